"""A model.tar.gz in SageMaker k-NN's layout whose index FAISS wrote (python3-faiss): an
IndexFlatL2 from faiss.write_index, raw float32 labels, a model_algo-1.json with k and
predictor_type, tarred at the top level. knn-runner serve must load it from the tar.gz (and from a
directory holding it) and answer as FAISS's own search does."""
import json
import os
import sys
import tarfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_harness as h  # noqa: E402

import faiss  # noqa: E402  (python3-faiss)


def main():
    rng = np.random.default_rng(3)
    dim, n, k = 16, 1000, 4
    x = rng.normal(size=(n, dim)).astype(np.float32)
    labels = rng.integers(1, 8, size=n).astype(np.float32)
    q = rng.normal(size=(5, dim)).astype(np.float32)
    with h.TempDir("serve-faiss") as tmp:
        files = os.path.join(tmp, "files")
        os.makedirs(files)
        index = faiss.IndexFlatL2(dim)
        index.add(x)
        faiss.write_index(index, os.path.join(files, "model_algo-1"))
        labels.tofile(os.path.join(files, "model_algo-1.labels"))
        with open(os.path.join(files, "model_algo-1.json"), "w") as f:
            json.dump({"k": k, "predictor_type": "classifier"}, f)
        tar_dir = os.path.join(tmp, "model")
        os.makedirs(tar_dir)
        tar_path = os.path.join(tar_dir, "model.tar.gz")
        with tarfile.open(tar_path, "w:gz") as t:
            for name in ("model_algo-1", "model_algo-1.labels", "model_algo-1.json"):
                t.add(os.path.join(files, name), arcname=name)

        # FAISS's own answer
        fd, fi = index.search(q, k)
        pred, _, _ = h.brute_force(x, labels, q, k)
        for source in (tar_path, tar_dir):
            with h.Server(source, tmp) as srv:
                status, _, body = srv.invoke(h.body_csv(q), "text/csv", "application/jsonlines; verbose=true")
                h.check(status == 200, "%s: HTTP %d %r" % (source, status, body[:300]))
                if status != 200:
                    continue
                rows = [json.loads(line) for line in body.decode().splitlines()]
                h.check(len(rows) == len(q), "%s: %d rows" % (source, len(rows)))
                for i, r in enumerate(rows):
                    h.check(h.same_neighbours(r["labels"], labels[fi[i]], fd[i]),
                            "%s row %d: labels %r, FAISS says %r" % (source, i, r["labels"], labels[fi[i]].tolist()))
                    h.check(h.close_enough(r["distances"], fd[i]), "%s row %d: distances %r, FAISS says %r"
                            % (source, i, r["distances"], fd[i].tolist()))
                    h.check(r["predicted_label"] == pred[i], "%s row %d: predicted %r, expected %r"
                            % (source, i, r["predicted_label"], pred[i]))
    h.finish()


if __name__ == "__main__":
    main()
