"""The endpoint's per-request search settings: X-Amzn-SageMaker-Custom-Attributes: nprobe=N.

An IVFFlat model served by knn-runner answers a request carrying nprobe=N as FAISS's own search of
the model file does with index.nprobe = N; bad values are refused with 400 naming the setting;
other attributes (the client's own) change nothing.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "serve"))
import serve_harness as h  # noqa: E402

HEADER = "X-Amzn-SageMaker-Custom-Attributes"


def _invoke(srv, q, attrs=None):
    headers = {"Content-Type": "text/csv", "Accept": "application/jsonlines; verbose=true"}
    if attrs is not None:
        headers[HEADER] = attrs
    return srv.request("POST", "/invocations", h.body_csv(q).encode(), headers)


def main():
    try:
        import faiss
    except ImportError:
        sys.exit(103)
    rng = np.random.default_rng(8)
    dim, n, k, nlist = 12, 4000, 10, 64
    centres = rng.normal(size=(40, dim)) * 3
    x = (centres[rng.integers(0, 40, n)] + rng.normal(size=(n, dim))).astype(np.float32)
    labels = rng.integers(0, 5, n).astype(np.float32)
    q = (centres[rng.integers(0, 40, 30)] + rng.normal(size=(30, dim))).astype(np.float32)
    with h.TempDir("serve-attrs") as tmp:
        model = h.make_model(os.path.join(tmp, "ivf"), x, labels, k, index="faiss.IVFFlat", nlist=nlist)
        index = faiss.read_index(os.path.join(model, "model_algo-1"))
        flat = h.make_model(os.path.join(tmp, "flat"), x, labels, k)
        with h.Server(model, tmp) as srv:
            answers = {}
            for attrs, nprobe in [(None, index.nprobe), ("nprobe=1", 1), (" nprobe = 3 ", 3),
                                  ("trace-id=abc,nprobe=%d" % nlist, nlist), ("session=xyz", index.nprobe)]:
                status, _, body = _invoke(srv, q, attrs)
                if not h.check(status == 200, "%r: HTTP %d %r" % (attrs, status, body[:300])):
                    continue
                rows = [json.loads(line) for line in body.decode().splitlines()]
                index.nprobe = nprobe
                fd, fi = index.search(q, k)
                for i, r in enumerate(rows):
                    h.check(h.same_neighbours(r["labels"], labels[fi[i]], fd[i]),
                            "%r row %d: labels %r, FAISS at nprobe %d says %r" % (
                                attrs, i, r["labels"], nprobe, labels[fi[i]].tolist()))
                    h.check(h.close_enough(r["distances"], fd[i]), "%r row %d: distances differ from FAISS's" % (
                        attrs, i))
                answers[attrs] = [r["distances"] for r in rows]
            # nprobe 1 and nprobe = nlist really search differently on these rows.
            h.check(answers.get("nprobe=1") != answers.get("trace-id=abc,nprobe=%d" % nlist),
                    "nprobe=1 and nprobe=%d gave the same answers" % nlist)
            for attrs, part in [("nprobe=0", "nprobe='0' is not an integer from 1 to %d" % nlist),
                                ("nprobe=%d" % (nlist + 1), "is not an integer from 1 to %d" % nlist),
                                ("nprobe=abc", "nprobe='abc'"), ("nprobe=-2", "nprobe='-2'"),
                                ("nprobe=99999999999999999999999", "is not an integer"),
                                ("nprobe=2;nprobe=3", "nprobe is given twice"),
                                ("efSearch=10", "efSearch does not apply to this model's faiss.IVFFlat index"),
                                ("nprobe=1," + "x" * 1100, "more than the 1024 allowed")]:
                status, _, body = _invoke(srv, q, attrs)
                h.check(status == 400 and part in body.decode("utf-8", "replace"),
                        "%r: HTTP %d %r (expected 400 with %r)" % (attrs[:40], status, body[:300], part))
            # The server is still fine after the refusals.
            status, _, _ = _invoke(srv, q, "nprobe=2")
            h.check(status == 200, "nprobe=2 after refusals: HTTP %d" % status)
        # An HNSW model: efSearch=N answers as FAISS's search of the file with hnsw.efSearch = N.
        hnsw = h.make_model(os.path.join(tmp, "hnsw"), x, labels, k, index="hnsw")
        hindex = faiss.read_index(os.path.join(hnsw, "model_algo-1"))
        stored = hindex.hnsw.efSearch
        with h.Server(hnsw, tmp) as srv:
            seen = []
            for attrs, ef in [(None, stored), ("efSearch=1", 1), ("efSearch=300", 300)]:
                status, _, body = _invoke(srv, q, attrs)
                if not h.check(status == 200, "hnsw %r: HTTP %d %r" % (attrs, status, body[:300])):
                    continue
                rows = [json.loads(line) for line in body.decode().splitlines()]
                hindex.hnsw.efSearch = ef
                fd, fi = hindex.search(q, k)
                for i, r in enumerate(rows):
                    h.check(h.same_neighbours(r["labels"], labels[fi[i]], fd[i]) and h.close_enough(
                        r["distances"], fd[i]), "hnsw %r row %d differs from FAISS at efSearch %d" % (attrs, i, ef))
                seen.append([r["distances"] for r in rows])
            h.check(len(seen) == 3 and seen[1] != seen[2], "efSearch=1 and efSearch=300 gave the same answers")
            for attrs, part in [("efSearch=4097", "efSearch='4097' is not an integer from 1 to 4096"),
                                ("nprobe=2", "nprobe does not apply to this model's hnsw index")]:
                status, _, body = _invoke(srv, q, attrs)
                h.check(status == 400 and part in body.decode("utf-8", "replace"),
                        "hnsw %r: HTTP %d %r (expected 400 with %r)" % (attrs, status, body[:300], part))
        with h.Server(flat, tmp) as srv:
            status, _, body = _invoke(srv, q, "nprobe=4")
            h.check(status == 400 and b"nprobe does not apply to this model's faiss.Flat index" in body,
                    "Flat model with nprobe: HTTP %d %r" % (status, body[:300]))
    h.finish()


if __name__ == "__main__":
    main()
