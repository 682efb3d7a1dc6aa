#!/usr/bin/python3
"""HNSW and IVF-SQ8 beside Debian's FAISS (1.7.3) on the anchor data, one thread, one run:
each measure is taken for both sides back to back on the same loaded machine and printed as a
ratio (ours / FAISS for seconds and bytes, ours / FAISS for QPS).

    compare_index.py --bench build/bench/algorithms/ivf/bench_ivf [--data ~/.cache/knn-bench-data]

- HNSW (topics, 50k x 20; M 32, efConstruction 40, FAISS's defaults): build time; QPS at the
  smallest efSearch of each side whose recall@10 reaches 0.95, batch and one query per call.
- IVF-SQ8 (gaussian, 200k x 128, nlist 447, QT_8bit): FAISS at nprobe 8; ours at the smallest
  nprobe whose recall@10 is at least FAISS's there; QPS and index file bytes.
- What recall measurement and tuning add to a job (ours): seconds beside the build's.
CPU seconds are printed beside wall seconds: on a busy machine the CPU ratio is the steadier one.
"""
import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import faiss  # noqa: E402

faiss.omp_set_num_threads(1)
K = 10


def recall(I, gt):
    return sum(len(set(I[q, :K]) & set(gt[q, :K])) for q in range(len(I))) / (len(I) * K)


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def faiss_search(index, xq, gt, set_param, values):
    rows = []
    for v in values:
        set_param(v)
        best = None
        for _ in range(2):
            (D, I), w, c = timed(lambda: index.search(xq, K))
            best = (w, c) if best is None or w < best[0] else best
        n1, t0 = 0, time.perf_counter()
        while n1 < len(xq) and (n1 < 10 or time.perf_counter() - t0 < 1.0):
            index.search(xq[n1:n1 + 1], K)
            n1 += 1
        rows.append(dict(setting=v, recall=recall(I, gt), qps=len(xq) / best[0], qps_cpu=len(xq) / best[1],
                         single_qps=n1 / (time.perf_counter() - t0)))
    return rows


def ours(bench, args):
    out = subprocess.run([bench] + args, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def first_reaching(rows, key, target):
    ok = [r for r in rows if r[key] >= target]
    return min(ok, key=lambda r: r["setting"]) if ok else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--data", default=os.environ.get("KNN_BENCH_DATA", os.path.expanduser("~/.cache/knn-bench-data")))
    a = ap.parse_args()
    load = lambda name: np.load(os.path.join(a.data, name))  # noqa: E731

    # ---- HNSW on topics ----
    xb, xq, gt = load("topics_base.npy"), load("topics_query.npy"), load("topics_gt_l2.npy")
    efs = [8, 16, 24, 32, 48, 64, 96, 128]
    index = faiss.IndexHNSWFlat(xb.shape[1], 32)
    _, fb_w, fb_c = timed(lambda: index.add(xb))
    f_rows = faiss_search(index, xq, gt, lambda v: setattr(index.hnsw, "efSearch", v), efs)
    del index
    o = ours(a.bench, ["--base", os.path.join(a.data, "topics_base.npy"), "--query", os.path.join(a.data, "topics_query.npy"),
                       "--gt", os.path.join(a.data, "topics_gt_l2.npy"), "--index", "hnsw", "--hnsw-m", "32", "--efc", "40",
                       "--nprobe", ",".join(map(str, efs)), "--threads", "1", "--repeats", "2", "--recall-target", "0.95",
                       "--name", "topics"])
    tune, o_rows = o[0], [dict(r, setting=r["ef_search"], recall=r["recall_at_10"]) for r in o[1:]]
    fr, orow = first_reaching(f_rows, "recall", 0.95), first_reaching(o_rows, "recall", 0.95)
    print("HNSW topics (M 32, efConstruction 40, 1 thread)")
    print("  build: ours %.2f s wall / %.2f s CPU, FAISS %.2f s / %.2f s: ratio %.2f wall, %.2f CPU" % (
        o_rows[0]["add_s"], o_rows[0]["add_cpu_s"], fb_w, fb_c, o_rows[0]["add_s"] / fb_w, o_rows[0]["add_cpu_s"] / fb_c))
    print("  recall@10 >= 0.95: ours efSearch %d (R %.4f), FAISS efSearch %d (R %.4f)" % (
        orow["setting"], orow["recall"], fr["setting"], fr["recall"]))
    print("  QPS batch: ours %.0f (CPU %.0f), FAISS %.0f (CPU %.0f): ratio %.2f wall, %.2f CPU" % (
        orow["qps"], orow["qps_cpu"], fr["qps"], fr["qps_cpu"], orow["qps"] / fr["qps"], orow["qps_cpu"] / fr["qps_cpu"]))
    print("  QPS one query per call: ours %.0f, FAISS %.0f: ratio %.2f" % (
        orow["single_qps"], fr["single_qps"], orow["single_qps"] / fr["single_qps"]))
    print("  recall tuning to 0.95 (%d held-out rows): exact search %.3f s + tuning %.3f s = %.1f%% of the build" % (
        tune["queries"], tune["truth_s"], tune["tune_s"], 100 * (tune["truth_s"] + tune["tune_s"]) / tune["build_s"]))
    print("  per efSearch (ours R/QPS | FAISS R/QPS): " + "; ".join(
        "%d: %.3f/%.0f | %.3f/%.0f" % (x["setting"], x["recall"], x["qps"], y["recall"], y["qps"])
        for x, y in zip(o_rows, f_rows)))

    # ---- IVF-SQ8 on gaussian ----
    xb, xq, gt = load("gaussian_base.npy"), load("gaussian_query.npy"), load("gaussian_gt_l2.npy")
    nlist, probes = 447, [2, 3, 4, 6, 8, 12, 16]
    index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatL2(xb.shape[1]), xb.shape[1], nlist,
                                          faiss.ScalarQuantizer.QT_8bit)
    _, ft_w, ft_c = timed(lambda: (index.train(xb), index.add(xb)))
    f_rows = faiss_search(index, xq, gt, lambda v: setattr(index, "nprobe", v), probes)
    f_bytes = len(faiss.serialize_index(index))
    del index
    o = ours(a.bench, ["--base", os.path.join(a.data, "gaussian_base.npy"), "--query", os.path.join(a.data, "gaussian_query.npy"),
                       "--gt", os.path.join(a.data, "gaussian_gt_l2.npy"), "--index", "ivfsq8", "--nlist", str(nlist),
                       "--nprobe", ",".join(map(str, probes)), "--threads", "1", "--repeats", "2",
                       "--recall-target", "0.95", "--name", "gaussian"])
    tune, o_rows = o[0], [dict(r, setting=r["nprobe"], recall=r["recall_at_10"]) for r in o[1:]]
    f8 = [r for r in f_rows if r["setting"] == 8][0]
    orow = first_reaching(o_rows, "recall", f8["recall"])
    print("IVF-SQ8 gaussian (nlist 447, QT_8bit, 1 thread)")
    print("  train+add: ours %.2f s wall / %.2f s CPU, FAISS %.2f s / %.2f s" % (
        o_rows[0]["train_s"] + o_rows[0]["add_s"], o_rows[0]["train_cpu_s"] + o_rows[0]["add_cpu_s"], ft_w, ft_c))
    if orow:
        print("  equal recall: FAISS nprobe 8 R %.4f; ours nprobe %d R %.4f" % (f8["recall"], orow["setting"], orow["recall"]))
        print("  QPS batch: ours %.0f (CPU %.0f), FAISS %.0f (CPU %.0f): ratio %.2f wall, %.2f CPU" % (
            orow["qps"], orow["qps_cpu"], f8["qps"], f8["qps_cpu"], orow["qps"] / f8["qps"], orow["qps_cpu"] / f8["qps_cpu"]))
        print("  QPS one query per call: ours %.0f, FAISS %.0f: ratio %.2f" % (
            orow["single_qps"], f8["single_qps"], orow["single_qps"] / f8["single_qps"]))
    print("  index file: ours %d bytes, FAISS %d bytes (ratio %.3f); float32 vectors alone: %d bytes" % (
        o_rows[0]["index_bytes"], f_bytes, o_rows[0]["index_bytes"] / f_bytes, xb.nbytes))
    print("  recall tuning to 0.95 (%d held-out rows): exact search %.3f s + tuning %.3f s = %.1f%% of the build" % (
        tune["queries"], tune["truth_s"], tune["tune_s"], 100 * (tune["truth_s"] + tune["tune_s"]) / tune["build_s"]))
    print("  per nprobe (ours R/QPS | FAISS R/QPS): " + "; ".join(
        "%d: %.3f/%.0f | %.3f/%.0f" % (x["setting"], x["recall"], x["qps"], y["recall"], y["qps"])
        for x, y in zip(o_rows, f_rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
