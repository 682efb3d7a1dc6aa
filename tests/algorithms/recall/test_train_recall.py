"""Recall in a training job (knn-runner train): measured, tuned to the manifest's KnnRunner
TargetRecall or --target-recall, logged, in job-summary.json, and stored where FAISS reads it.

    test_train_recall.py CASE      (CASE: one of the functions named case_*)

Expected values come from FAISS: it loads our model_algo-1 and measures leave-one-out recall@k
over every training row with the nprobe the file holds.
"""
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "train"))
import trainlib as t  # noqa: E402

N, D = 3000, 12


def _data(tmp):
    x, y = t.clusters(N, D, 6, seed=31, spread=1.5)
    os.makedirs(os.path.join(tmp, "train"), exist_ok=True)
    with open(os.path.join(tmp, "train", "a.rec"), "wb") as f:
        f.write(t.recordio_bytes(x, y))
    return x.astype(np.float32), y


def _job(tmp, name, hps, extra=None, args=()):
    m = t.manifest(name, hps, "file://" + os.path.join(tmp, "train"), "file://" + os.path.join(tmp, "out"),
                   extra=extra)
    path = os.path.join(tmp, name + ".json")
    t.write_json(path, m)
    return t.run_train(["--manifest", path, "--json", "--threads", "2"] + list(args))


def _model(tmp, name):
    tar = os.path.join(tmp, "out", name, "output", "model.tar.gz")
    return t.faiss_model(t.read_model_tar(open(tar, "rb").read()))


def _faiss_recall(index, x, k):
    """FAISS's own leave-one-out recall@k over every row, at the nprobe stored in the file."""
    import faiss
    exact = faiss.IndexFlat(x.shape[1], index.metric_type)
    exact.add(x)
    _, it = exact.search(x, k + 1)
    _, ia = index.search(x, k + 1)
    hits = 0
    for q in range(len(x)):
        a = [i for i in ia[q] if i != q][:k]
        b = [i for i in it[q] if i != q][:k]
        hits += len(set(a) & set(b))
    return hits / (len(x) * k)


HPS = {"feature_dim": D, "k": 10, "sample_size": 100000, "predictor_type": "classifier",
       "index_type": "faiss.IVFFlat", "faiss_index_ivf_nlists": "60"}


def case_target_from_manifest(tmp):
    x, _ = _data(tmp)
    r = _job(tmp, "recall-target", HPS, extra={"KnnRunner": {"TargetRecall": 0.95, "RecallQueries": 1000}})
    t.check(r.rc == 0, "job failed: " + r.show())
    rec = r.summary()["Recall"]
    t.check(set(rec) == {"k", "nprobe", "queries", "value", "seconds", "target", "reached"}, "Recall %s" % rec)
    t.check(rec["k"] == 10 and rec["queries"] == 1000 and rec["target"] == 0.95 and rec["reached"] is True,
            "Recall %s" % rec)
    t.check(rec["value"] >= 0.95 and 1 <= rec["nprobe"] <= 60, "Recall %s" % rec)
    written = json.load(open(os.path.join(tmp, "out", "recall-target", "output", "job-summary.json")))
    t.check(written["Recall"] == rec, "job-summary.json Recall %s, stdout %s" % (written["Recall"], rec))
    line = "#recall (nprobe %d) : recall@10 = %.4f on 1000 held-out queries" % (rec["nprobe"], rec["value"])
    t.check(line in r.err, "log lacks %r:\n%s" % (line, r.err[-3000:]))
    t.check("target recall 0.95 reached with nprobe %d" % rec["nprobe"] in r.err, r.err[-3000:])
    index, _, meta = _model(tmp, "recall-target")
    t.check(index.nprobe == rec["nprobe"] and meta["nprobe"] == rec["nprobe"],
            "index nprobe %d, json nprobe %s, reported %d" % (index.nprobe, meta["nprobe"], rec["nprobe"]))
    got = _faiss_recall(index, x, 10)
    t.check(abs(got - rec["value"]) <= 0.01, "FAISS measures %.4f, the job reported %.4f" % (got, rec["value"]))
    # One setting below is short of the target (else the tuning did not find the smallest).
    if rec["nprobe"] > 1:
        index.nprobe = rec["nprobe"] - 1
        below = _faiss_recall(index, x, 10)
        t.check(below < 0.95 + 0.01, "nprobe %d already gives %.4f" % (rec["nprobe"] - 1, below))


def case_command_line_and_unreachable(tmp):
    x, _ = _data(tmp)
    hps = dict(HPS, index_type="faiss.IVFPQ", faiss_index_pq_m="4")
    # The command line wins over the manifest; PQ codes of 4 bytes cannot reach recall 1.
    r = _job(tmp, "recall-pq", hps, extra={"KnnRunner": {"TargetRecall": 0.5}}, args=["--target-recall", "1"])
    t.check(r.rc == 0, "job failed: " + r.show())
    rec = r.summary()["Recall"]
    t.check(rec["target"] == 1 and rec["reached"] is False and rec["value"] < 1, "Recall %s" % rec)
    t.check("target recall 1 not reached: the best setting measured is nprobe %d" % rec["nprobe"] in r.err,
            r.err[-3000:])
    # Default queries: min(1000, 1% of the 3000 rows sampled).
    t.check(rec["queries"] == 30, "Recall %s" % rec)
    index, _, meta = _model(tmp, "recall-pq")
    t.check(index.nprobe == rec["nprobe"] == meta["nprobe"], "nprobe %d / %s / %d" % (
        index.nprobe, meta["nprobe"], rec["nprobe"]))


def case_measured_without_target_and_off(tmp):
    x, _ = _data(tmp)
    r = _job(tmp, "recall-plain", HPS)
    t.check(r.rc == 0, "job failed: " + r.show())
    rec = r.summary()["Recall"]
    index, _, meta = _model(tmp, "recall-plain")
    t.check(set(rec) == {"k", "nprobe", "queries", "value", "seconds"} and rec["nprobe"] == meta["nprobe"],
            "Recall %s (model nprobe %s)" % (rec, meta["nprobe"]))
    r = _job(tmp, "recall-off", HPS, args=["--recall-queries", "0"])
    t.check(r.rc == 0 and "Recall" not in r.summary(), r.show())
    r = _job(tmp, "recall-flat", dict(HPS, index_type="faiss.Flat"))
    t.check(r.rc == 0 and "Recall" not in r.summary(), r.show())
    # Bad extension settings are the manifest's errors, named by path.
    r = _job(tmp, "recall-bad", HPS, extra={"KnnRunner": {"TargetRecall": 1.5, "RecallQueries": -1, "Nope": 1}})
    t.check(r.rc == 1, r.show())
    for part in ["KnnRunner.TargetRecall: expected a number in (0, 1]", "KnnRunner.RecallQueries: must be an integer",
                 "KnnRunner.Nope: unknown field"]:
        t.check(part in r.err, "error lacks %r:\n%s" % (part, r.err[-2000:]))


def case_ivf_sq8_job(tmp):
    """KnnRunner.IndexType ivf_sq8: a FAISS IndexIVFScalarQuantizer, scored as FAISS scores it."""
    import faiss
    x, y = _data(tmp)
    tx, ty = t.clusters(300, D, 6, seed=32, spread=1.5)
    os.makedirs(os.path.join(tmp, "test"), exist_ok=True)
    with open(os.path.join(tmp, "test", "t.rec"), "wb") as f:
        f.write(t.recordio_bytes(tx, ty))
    for metric in ["L2", "INNER_PRODUCT", "COSINE"]:
        name = "sq8-" + metric.lower().replace("_", "-")
        m = t.manifest(name, dict(HPS, index_metric=metric), "file://" + os.path.join(tmp, "train"),
                       "file://" + os.path.join(tmp, "out"), test_uri="file://" + os.path.join(tmp, "test"),
                       extra={"KnnRunner": {"IndexType": "ivf_sq8", "TargetRecall": 0.9}})
        path = os.path.join(tmp, name + ".json")
        t.write_json(path, m)
        r = t.run_train(["--manifest", path, "--json", "--threads", "2"])
        t.check(r.rc == 0, "job failed: " + r.show())
        t.check("Building the index: ivf_sq8, metric %s" % metric in r.err, r.err[-3000:])
        index, labels, meta = _model(tmp, name)
        t.check(isinstance(index, faiss.IndexIVFScalarQuantizer), "FAISS read a %s" % type(index).__name__)
        t.check(index.code_size == D and index.nlist == 60 and index.ntotal == N, "index %d/%d/%d" % (
            index.code_size, index.nlist, index.ntotal))
        t.check(meta["index_type"] == "ivf_sq8" and meta["nprobe"] == index.nprobe, "model json %s" % meta)
        rec = r.summary()["Recall"]
        t.check(rec["reached"] is True and rec["nprobe"] == index.nprobe, "Recall %s" % rec)
        # The test score is what FAISS computes on our file with the stored nprobe.
        name_, value = r.test_score()
        got = t.faiss_score(index, labels, meta, tx, ty, "classifier", metric)
        t.check((name_, value) == got, "test score %s, FAISS on our file %s" % ((name_, value), got))
        t.check(value > 0.5, "accuracy %g" % value)
    # A value outside the two extension types is refused with the choices.
    r = _job(tmp, "sq8-bad", HPS, extra={"KnnRunner": {"IndexType": "faiss.HNSW"}})
    t.check(r.rc == 1 and "KnnRunner.IndexType: 'faiss.HNSW' is not one of ivf_sq8, hnsw" in r.err, r.show())


def case_hnsw_job(tmp):
    """KnnRunner.IndexType hnsw: a FAISS IndexHNSWFlat with the tuned efSearch, measured by FAISS."""
    import faiss
    x, y = _data(tmp)
    tx, ty = t.clusters(300, D, 6, seed=33, spread=1.5)
    os.makedirs(os.path.join(tmp, "test"), exist_ok=True)
    with open(os.path.join(tmp, "test", "t.rec"), "wb") as f:
        f.write(t.recordio_bytes(tx, ty))
    for metric in ["L2", "COSINE"]:
        name = "hnsw-" + metric.lower()
        m = t.manifest(name, dict(HPS, index_type="faiss.Flat", index_metric=metric),
                       "file://" + os.path.join(tmp, "train"), "file://" + os.path.join(tmp, "out"),
                       test_uri="file://" + os.path.join(tmp, "test"),
                       extra={"KnnRunner": {"IndexType": "hnsw", "M": 12, "efConstruction": 60,
                                            "TargetRecall": 0.97, "RecallQueries": 1000}})
        path = os.path.join(tmp, name + ".json")
        t.write_json(path, m)
        r = t.run_train(["--manifest", path, "--json", "--threads", "2"])
        t.check(r.rc == 0, "job failed: " + r.show())
        t.check("Building the index: hnsw, metric %s, 3000 rows of 12 features, M 12, efConstruction 60" % metric
                in r.err, r.err[-3000:])
        index, labels, meta = _model(tmp, name)
        t.check(isinstance(index, faiss.IndexHNSWFlat), "FAISS read a %s" % type(index).__name__)
        rec = r.summary()["Recall"]
        t.check(set(rec) == {"k", "efSearch", "queries", "value", "seconds", "target", "reached"}, "Recall %s" % rec)
        t.check(rec["reached"] is True and rec["value"] >= 0.97, "Recall %s" % rec)
        t.check(index.hnsw.efSearch == rec["efSearch"] == meta["ef_search"] and meta["hnsw_m"] == 12,
                "efSearch: file %d, Recall %s, json %s" % (index.hnsw.efSearch, rec, meta))
        t.check(meta["index_type"] == "hnsw", "model json %s" % meta)
        xs = x.copy()
        if metric == "COSINE":
            faiss.normalize_L2(xs)
        got = _faiss_recall(index, xs, 10)
        t.check(abs(got - rec["value"]) <= 0.01, "FAISS measures %.4f, the job reported %.4f" % (got, rec["value"]))
        name_, value = r.test_score()
        want = t.faiss_score(index, labels, meta, tx, ty, "classifier", metric)
        t.check((name_, value) == want, "test score %s, FAISS on our file %s" % ((name_, value), want))
    r = _job(tmp, "hnsw-bad", HPS, extra={"KnnRunner": {"IndexType": "ivf_sq8", "M": 16, "efSearch": 0}})
    t.check(r.rc == 1 and "KnnRunner.efSearch: must be an integer from 1 to 4096, found 0" in r.err and
            "apply only with \"IndexType\": \"hnsw\"" in r.err, r.show())


def main():
    if len(sys.argv) != 2 or not hasattr(sys.modules[__name__], "case_" + sys.argv[1]):
        t.fail("usage: test_train_recall.py CASE")
    try:
        import faiss  # noqa: F401
    except ImportError:
        sys.exit(t.SKIP)
    tmp = tempfile.mkdtemp(prefix="knn-recall-")
    try:
        getattr(sys.modules[__name__], "case_" + sys.argv[1])(tmp)
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    main()
