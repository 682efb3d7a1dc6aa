#!/usr/bin/python3
"""FAISS side of the index-file interop tests (test_interop.c runs this with Debian's python3).

    faiss_interop.py make DIR    FAISS trains and writes indexes of every type we read, with
                                 the queries and FAISS's own results, for the C side to compare
    faiss_interop.py check DIR   faiss.read_index loads each index file the C side wrote and
                                 must return the C side's neighbours

Files in DIR (raw little-endian arrays, no headers):
    queries.f32                  nq x d float32 queries
    <case>.faissindex            an index file
    <case>.ids / <case>.dist     nq x k int64 labels / float32 distances
    cases.json                   [{"name", "d", "nq", "k", "nprobe", "kind"}, ...]

Results match when, per query, the distances agree within a relative tolerance and the ids agree
except among results whose distances tie (within the tolerance). Exit 0 = all match, 1 = a
mismatch (printed), 103 = python3-faiss is not installed (the C test skips).
"""
import json
import os
import sys

# One thread: FAISS's OpenMP threads spin-wait, which crawls on a shared, busy machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

try:
    import numpy as np
    import faiss
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}", file=sys.stderr)
    sys.exit(103)

REL_TOL = 1e-4


def same_results(name, D, I, D2, I2):
    """True if (D2, I2) equal (D, I) up to float tolerance and tie order; prints the first fault."""
    nq, k = I.shape
    for q in range(nq):
        for r in range(k):
            if I[q, r] == -1 and I2[q, r] == -1:
                continue  # padding: FAISS writes FLT_MAX for L2 where we write +inf
            tol = REL_TOL * (1.0 + abs(float(D[q, r]))) if np.isfinite(D[q, r]) else 0
            if not (D[q, r] == D2[q, r] or abs(float(D[q, r]) - float(D2[q, r])) <= tol):
                print(f"{name}: query {q} rank {r}: distance {D2[q, r]!r}, expected {D[q, r]!r}", file=sys.stderr)
                return False
            if I[q, r] != I2[q, r]:
                # a tie: the expected id must be among the others at (nearly) the same distance
                near = [j for j in range(k) if I2[q, j] == I[q, r] and abs(float(D2[q, j]) - float(D[q, r])) <= tol]
                if not near:
                    print(f"{name}: query {q} rank {r}: id {I2[q, r]}, expected {I[q, r]}", file=sys.stderr)
                    return False
    return True


def make(out):
    rng = np.random.default_rng(20240601)
    d, n, nq, k = 16, 3000, 50, 10
    centres = rng.standard_normal((30, d)) * 3
    xb = (centres[rng.integers(0, 30, n)] + rng.standard_normal((n, d))).astype(np.float32)
    xq = (centres[rng.integers(0, 30, nq)] + rng.standard_normal((nq, d))).astype(np.float32)
    xq.tofile(os.path.join(out, "queries.f32"))
    ip = faiss.METRIC_INNER_PRODUCT
    cases = []

    def ivf(quantizer, nlist, metric=faiss.METRIC_L2):
        return faiss.IndexIVFFlat(quantizer, d, nlist, metric)

    builds = [
        ("flat_l2", "flat", lambda: faiss.IndexFlatL2(d), None, xb),
        ("flat_ip", "flat", lambda: faiss.IndexFlatIP(d), None, xb),
        ("ivfflat_l2", "ivfflat", lambda: ivf(faiss.IndexFlatL2(d), 40), 5, xb),
        ("ivfflat_ip", "ivfflat", lambda: ivf(faiss.IndexFlatIP(d), 40, ip), 5, xb),
        # an inner-product IVF over an L2 quantizer: the lists are chosen by L2, scanned by IP
        ("ivfflat_ip_l2q", "ivfflat", lambda: ivf(faiss.IndexFlatL2(d), 40, ip), 5, xb),
        # few vectors in many lists: FAISS writes the list sizes in its sparse form ("sprs")
        ("ivfflat_sparse", "ivfflat", lambda: ivf(faiss.IndexFlatL2(d), 64), 64, xb[:20]),
        ("ivfpq", "ivfpq", lambda: faiss.IndexIVFPQ(faiss.IndexFlatL2(d), d, 20, 4, 8), 4, xb),
        ("ivfpq_m8", "ivfpq", lambda: faiss.IndexIVFPQ(faiss.IndexFlatL2(d), d, 20, 8, 8), 20, xb),
        ("ivfsq8_l2", "ivfsq8", lambda: faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatL2(d), d, 40, faiss.ScalarQuantizer.QT_8bit), 5, xb),
        ("ivfsq8_ip", "ivfsq8", lambda: faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatIP(d), d, 40, faiss.ScalarQuantizer.QT_8bit, ip), 5, xb),
        ("ivfsq8_nores", "ivfsq8", lambda: faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatL2(d), d, 40, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_L2, False), 5, xb),
        # HNSW: the last field is efSearch
        ("hnsw_l2", "hnsw", lambda: faiss.IndexHNSWFlat(d, 16), 20, xb),
        ("hnsw_ip", "hnsw", lambda: faiss.IndexHNSWFlat(d, 8, ip), 20, xb),
    ]
    for name, kind, ctor, nprobe, base in builds:
        index = ctor()
        if not index.is_trained:
            index.train(xb)
        index.add(base)
        if kind == "hnsw":
            index.hnsw.efSearch = nprobe
        elif nprobe is not None:
            index.nprobe = nprobe
        faiss.write_index(index, os.path.join(out, f"{name}.faissindex"))
        D, I = index.search(xq, k)
        I.astype(np.int64).tofile(os.path.join(out, f"{name}.ids"))
        D.astype(np.float32).tofile(os.path.join(out, f"{name}.dist"))
        cases.append(dict(name=name, kind=kind, d=d, nq=nq, k=k, nprobe=nprobe or 0))
    # a PQ index without residual encoding
    index = faiss.IndexIVFPQ(faiss.IndexFlatL2(d), d, 20, 4, 8)
    index.by_residual = False
    index.train(xb)
    index.add(xb)
    index.nprobe = 6
    faiss.write_index(index, os.path.join(out, "ivfpq_nores.faissindex"))
    D, I = index.search(xq, k)
    I.astype(np.int64).tofile(os.path.join(out, "ivfpq_nores.ids"))
    D.astype(np.float32).tofile(os.path.join(out, "ivfpq_nores.dist"))
    cases.append(dict(name="ivfpq_nores", kind="ivfpq", d=d, nq=nq, k=k, nprobe=6))
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f)
    return 0


def check(out):
    with open(os.path.join(out, "cases.json")) as f:
        cases = json.load(f)
    ok = True
    for c in cases:
        d, nq, k = c["d"], c["nq"], c["k"]
        xq = np.fromfile(os.path.join(out, "queries.f32"), dtype=np.float32).reshape(nq, d)
        index = faiss.read_index(os.path.join(out, c["name"] + ".faissindex"))
        want_type = {"flat": faiss.IndexFlat, "ivfflat": faiss.IndexIVFFlat, "ivfpq": faiss.IndexIVFPQ,
                     "ivfsq8": faiss.IndexIVFScalarQuantizer, "hnsw": faiss.IndexHNSWFlat}[c["kind"]]
        if not isinstance(index, want_type):
            print(f"{c['name']}: faiss read a {type(index).__name__}", file=sys.stderr)
            ok = False
            continue
        if c["kind"] == "hnsw" and index.hnsw.efSearch != c["nprobe"]:
            print(f"{c['name']}: efSearch {index.hnsw.efSearch}, expected {c['nprobe']}", file=sys.stderr)
            ok = False
        if c["kind"] not in ("flat", "hnsw") and index.nprobe != c["nprobe"]:
            print(f"{c['name']}: nprobe {index.nprobe}, expected {c['nprobe']}", file=sys.stderr)
            ok = False
        if index.ntotal != c["ntotal"]:
            print(f"{c['name']}: ntotal {index.ntotal}, expected {c['ntotal']}", file=sys.stderr)
            ok = False
        D, I = index.search(xq, k)
        ours_I = np.fromfile(os.path.join(out, c["name"] + ".ids"), dtype=np.int64).reshape(nq, k)
        ours_D = np.fromfile(os.path.join(out, c["name"] + ".dist"), dtype=np.float32).reshape(nq, k)
        if not same_results(c["name"], D, I, ours_D, ours_I):
            ok = False
    return 0 if ok else 1


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    return make(sys.argv[2]) if sys.argv[1] == "make" else check(sys.argv[2])


if __name__ == "__main__":
    sys.exit(main())
