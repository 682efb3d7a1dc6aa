#!/usr/bin/python3
"""FAISS side of test_model_recall_matches_faiss (test_recall.c runs it with Debian's python3).

    faiss_recall.py DIR

DIR holds model_algo-1 (an index file we wrote), data.f32 (the n x d float32 rows it was built
from, ids = row numbers) and expected.json {"n", "d", "k", "nprobe", "value"}: the nprobe the model
stored and the recall@k it reported. faiss.read_index must load the index with that nprobe, and
FAISS's own leave-one-out recall@k over every row (each row's own id removed from its exact and
its approximate k + 1 neighbours) must be within 0.01 of the reported value.
Exit 0 = agreement, 1 = a difference (printed), 103 = python3-faiss is not installed.
"""
import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

try:
    import numpy as np
    import faiss
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}", file=sys.stderr)
    sys.exit(103)


def leave_one_out(I, k):
    out = np.empty((I.shape[0], k), dtype=np.int64)
    for q in range(I.shape[0]):
        row = [i for i in I[q] if i != q][:k]
        out[q] = row
    return out


def main():
    out = sys.argv[1]
    with open(os.path.join(out, "expected.json")) as f:
        e = json.load(f)
    n, d, k = e["n"], e["d"], e["k"]
    x = np.fromfile(os.path.join(out, "data.f32"), dtype=np.float32).reshape(n, d)
    index = faiss.read_index(os.path.join(out, "model_algo-1"))
    if index.nprobe != e["nprobe"]:
        print(f"nprobe read back {index.nprobe}, stored {e['nprobe']}", file=sys.stderr)
        return 1
    exact = faiss.IndexFlat(d, index.metric_type)
    exact.add(x)
    _, It = exact.search(x, k + 1)
    _, Ia = index.search(x, k + 1)
    truth, found = leave_one_out(It, k), leave_one_out(Ia, k)
    hits = sum(len(set(truth[q]) & set(found[q])) for q in range(n))
    recall = hits / (n * k)
    if abs(recall - e["value"]) > 0.01:
        print(f"FAISS measures recall@{k} {recall:.4f} at nprobe {index.nprobe}; we reported {e['value']:.4f}",
              file=sys.stderr)
        return 1
    print(f"recall@{k} at nprobe {index.nprobe}: FAISS {recall:.4f}, ours {e['value']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
