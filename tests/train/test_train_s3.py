"""Training jobs against the local S3 server (Ceph RGW of the s3_server fixture).

    test_train_s3.py CASE      (CASE: one of the functions named case_*)

Data goes up with /usr/bin/aws; the model comes back down with it and is read by python3-faiss.
Expected scores come from a numpy brute-force k-NN, and from FAISS searching our index file.
"""
import json
import os
import sys
import tempfile
import uuid

import numpy as np

import trainlib as t

HPS = {"feature_dim": 8, "k": 5, "sample_size": 100000, "predictor_type": "classifier"}


class Ctx:
    def __init__(self, case):
        self.s3 = t.S3()
        self.prefix = "train-tests/%s-%s/" % (case, uuid.uuid4().hex[:8])
        self.tmp = tempfile.mkdtemp(prefix="knn-train-s3-")
        self.staged = os.path.join(self.tmp, "stage")
        self.models = None

    def key(self, rel):
        return self.prefix + rel

    def stage(self, rel, data):
        """A file to upload with the next upload() (aws calls are slow: one for many files)."""
        path = os.path.join(self.staged, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def upload(self):
        self.s3.put_tree(self.staged, self.prefix)
        import shutil
        shutil.rmtree(self.staged)

    def uri(self, rel):
        return self.s3.uri(self.prefix + rel)

    def job(self, name, m, extra_args=()):
        path = os.path.join(self.tmp, name + ".json")
        t.write_json(path, m)
        return t.run_train(["--manifest", path, "--json"] + list(extra_args), env=self.s3.run_env())

    def model(self, name):
        """The job's model.tar.gz, downloaded with the AWS CLI (all models of the case at once)."""
        path = os.path.join(self.tmp, "models", name, "output", "model.tar.gz")
        if not os.path.exists(path):
            self.s3.get_tree(self.prefix + "out/", os.path.join(self.tmp, "models"))
        with open(path, "rb") as f:
            return t.read_model_tar(f.read())

    def nothing_left(self, label):
        keys = self.s3.keys(self.prefix + "out/")
        t.check(keys == [], "%s: objects left at the output path: %s" % (label, keys))
        ups = self.s3.uploads(self.prefix)
        t.check(ups == [], "%s: multipart uploads left: %s" % (label, ups))


def _classifier_data(ctx, n=800, tn=200, d=8, classes=4, objects=3, seed=1):
    x, y = t.clusters(n, d, classes, seed=seed)
    tx, ty = t.clusters(tn, d, classes, seed=seed + 100)
    cuts = np.linspace(0, n, objects + 1).astype(int)
    for i in range(objects):
        ctx.stage(("train/part-%d.pbr" % i), t.recordio_bytes(x[cuts[i]:cuts[i + 1]], y[cuts[i]:cuts[i + 1]]))
    ctx.stage(("test/test.pbr"), t.recordio_bytes(tx, ty))
    ctx.upload()
    return x, y, tx, ty


def case_classifier(ctx):
    """The README's job: RecordIO in S3, a test channel, model.tar.gz in S3 read back by FAISS."""
    x, y, tx, ty = _classifier_data(ctx)
    m = t.manifest("s3-classifier", HPS, ctx.uri("train/"), ctx.uri("out"), test_uri=ctx.uri("test/"))
    r = ctx.job("s3-classifier", m)
    t.check(r.rc == 0, r.show())
    want = t.expected_score(x, y, tx, ty, 5, "L2", "classifier")
    t.check(r.test_score() == want, "score %s, expected %s" % (r.test_score(), want))
    files = ctx.model("s3-classifier")
    index, labels, meta = t.faiss_model(files)
    t.check(index.ntotal == 800, "ntotal %d" % index.ntotal)
    t.check(t.faiss_score(index, labels, meta, tx, ty, "classifier", "L2") == want, "FAISS score differs")
    s = r.summary()
    t.check(s["ModelArtifacts"] == ctx.uri("out/s3-classifier/output/model.tar.gz"), "artifact %s" % s)
    t.check(s["Channels"]["train"]["objects"] == 3 and s["Channels"]["train"]["rows"] == 800, "%s" % s)
    summary = json.load(open(os.path.join(ctx.tmp, "models/s3-classifier/output/job-summary.json")))
    t.check(summary["FinalMetrics"] == s["FinalMetrics"], "job-summary.json in S3 differs")
    t.check(ctx.s3.keys(ctx.prefix + "out/") == sorted([ctx.key("out/s3-classifier/output/job-summary.json"),
                                                          ctx.key("out/s3-classifier/output/model.tar.gz")]),
            "output keys %s" % ctx.s3.keys(ctx.prefix + "out/"))
    # Refused without --overwrite, the model unchanged.
    r2 = ctx.job("s3-classifier", m, ["--no-progress"])
    t.check(r2.rc == 1 and "already exists" in r2.err, r2.show())


def case_regressor_csv(ctx):
    x, y = t.regression(600, 6, seed=7)
    tx, ty = t.regression(150, 6, seed=8)
    ctx.stage(("train/a.csv"), t.csv_bytes(x[:300], y[:300]))
    ctx.stage(("train/b.csv"), t.csv_bytes(x[300:], y[300:]))
    ctx.stage(("test/t.csv"), t.csv_bytes(tx, ty))
    ctx.upload()
    hps = {"feature_dim": 6, "k": 4, "sample_size": 1000, "predictor_type": "regressor"}
    m = t.manifest("s3-regressor", hps, ctx.uri("train/"), ctx.uri("out"), test_uri=ctx.uri("test/"),
                   train_ct="text/csv;label_size=1", test_ct="text/csv")
    r = ctx.job("s3-regressor", m)
    t.check(r.rc == 0, r.show())
    name, value = r.test_score()
    _, want = t.expected_score(x, y, tx, ty, 4, "L2", "regressor")
    t.check(name == "mse" and abs(value - want) <= 1e-5 * want, "mse %.17g, expected %.17g" % (value, want))
    index, labels, meta = t.faiss_model(ctx.model("s3-regressor"))
    got = t.faiss_score(index, labels, meta, tx, ty, "regressor", "L2")
    t.check(abs(got[1] - want) <= 1e-5 * want, "FAISS mse %.17g, expected %.17g" % (got[1], want))


def case_index_types(ctx):
    """Every index type and metric: the score equals brute force (IVF with every list probed) and FAISS
    searching our index file."""
    import faiss
    x, y, tx, ty = _classifier_data(ctx, n=600, tn=150, objects=2, seed=3)
    combos = [
        ("faiss.Flat", "L2", {}),
        ("faiss.Flat", "INNER_PRODUCT", {}),
        ("faiss.Flat", "COSINE", {}),
        ("faiss.IVFFlat", "L2", {"faiss_index_ivf_nlists": "4"}),
        ("faiss.IVFFlat", "INNER_PRODUCT", {"faiss_index_ivf_nlists": "4"}),
        ("faiss.IVFFlat", "COSINE", {"faiss_index_ivf_nlists": "4"}),
        ("faiss.IVFFlat", "L2", {}),  # auto nlists
        ("faiss.IVFPQ", "L2", {"faiss_index_ivf_nlists": "4", "faiss_index_pq_m": "4"}),
        ("faiss.IVFPQ", "L2", {"faiss_index_ivf_nlists": "4"}),  # pq_m optional: 8 / 4 -> 2
    ]
    results = []
    for i, (itype, metric, more) in enumerate(combos):
        name = "idx-%d" % i
        hps = dict(HPS, index_type=itype, index_metric=metric, sample_size=600, **more)
        r = ctx.job(name, t.manifest(name, hps, ctx.uri("train/"), ctx.uri("out"), test_uri=ctx.uri("test/")))
        t.check(r.rc == 0, "%s %s: %s" % (itype, metric, r.show()))
        results.append(r.test_score())
    for i, (itype, metric, more) in enumerate(combos):
        got = results[i]
        index, labels, meta = t.faiss_model(ctx.model("idx-%d" % i))
        t.check(index.ntotal == 600, "%s %s: ntotal %d" % (itype, metric, index.ntotal))
        kind = {"faiss.Flat": "IndexFlat", "faiss.IVFFlat": "IndexIVFFlat", "faiss.IVFPQ": "IndexIVFPQ"}[itype]
        t.check(type(index).__name__.startswith(kind), "%s: FAISS reads a %s" % (itype, type(index).__name__))
        via_faiss = t.faiss_score(index, labels, meta, tx, ty, "classifier", metric)
        t.check(got == via_faiss, "%s %s: our score %s, FAISS on our index %s" % (itype, metric, got, via_faiss))
        if itype != "faiss.IVFPQ" and ("faiss_index_ivf_nlists" in more or itype == "faiss.Flat"):
            want = t.expected_score(x, y, tx, ty, 5, metric, "classifier")
            t.check(got == want, "%s %s: score %s, brute force %s" % (itype, metric, got, want))
        if itype == "faiss.IVFPQ":
            pq_m = int(more.get("faiss_index_pq_m", "2"))
            t.check(faiss.downcast_index(index).pq.M == pq_m, "%s %s: FAISS reads pq.M %d, expected %d"
                    % (itype, more, faiss.downcast_index(index).pq.M, pq_m))
        if itype == "faiss.IVFFlat" and not more:
            t.check(int(meta["nlist"]) == int(np.sqrt(600)), "auto nlists: %s" % meta)


def case_dimension_reduction(ctx):
    """sign and fjlt: the index holds y = x R with every entry of R +-1/sqrt(target) (recovered by
    least squares from the rows and the vectors FAISS reads back); fjlt's R has orthogonal columns."""
    d, target = 16, 6
    x, y = t.clusters(300, d, 3, seed=9)
    ctx.stage(("train/one.pbr"), t.recordio_bytes(x, y))
    tx, ty = t.clusters(80, d, 3, seed=10)
    ctx.stage(("test/t.pbr"), t.recordio_bytes(tx, ty))
    ctx.upload()
    scores = {}
    for kind in ["sign", "fjlt"]:
        name = "dimred-" + kind
        hps = dict(HPS, feature_dim=d, sample_size=300, dimension_reduction_type=kind, dimension_reduction_target=target)
        r = ctx.job(name, t.manifest(name, hps, ctx.uri("train/"), ctx.uri("out"), test_uri=ctx.uri("test/")),
                    ["--streams", "1"])
        t.check(r.rc == 0, r.show())
        scores[kind] = r.test_score()
    _, full = t.expected_score(x, y, tx, ty, 5, "L2", "classifier")
    for kind in ["sign", "fjlt"]:
        index, labels, meta = t.faiss_model(ctx.model("dimred-" + kind))
        t.check(index.d == target and index.ntotal == 300, "%s: index %d x %d" % (kind, index.ntotal, index.d))
        t.check(meta["dimension_reduction"]["type"] == kind, "%s: %s" % (kind, meta))
        vecs = index.reconstruct_n(0, index.ntotal).astype(np.float64)
        # One stream, fewer rows than the sample: the index keeps the rows in their order.
        t.check(np.array_equal(labels, y), "%s: labels not in row order" % kind)
        rmat, *_ = np.linalg.lstsq(x.astype(np.float64), vecs, rcond=None)
        t.check(np.allclose(np.abs(rmat), 1 / np.sqrt(target), atol=1e-3),
                "%s: projection entries %s are not +-1/sqrt(%d)" % (kind, np.unique(np.round(np.abs(rmat), 4)), target))
        if kind == "fjlt":
            gram = rmat.T @ rmat
            t.check(np.allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-3), "fjlt columns are not orthogonal")
        acc = scores[kind][1]
        t.check(acc >= full - 0.2, "%s: accuracy %g far below %g without reduction" % (kind, acc, full))


def case_sharded_two_workers(ctx):
    """InstanceCount 2: ShardedByS3Key gives objects 0, 2 to algo-1 and 1, 3 to algo-2, each samples
    sample_size / 2 of its own rows; FullyReplicated lets both read everything."""
    x, y = t.clusters(800, 8, 3, seed=13)
    parts = [(x[i * 200:(i + 1) * 200], y[i * 200:(i + 1) * 200]) for i in range(4)]
    for i, (px, py) in enumerate(parts):
        ctx.stage(("train/part-%d.pbr" % i), t.recordio_bytes(px, py))
    ctx.upload()
    hps = dict(HPS, sample_size=100)
    m = t.manifest("sharded", hps, ctx.uri("train/"), ctx.uri("out"), instances=2, train_distribution="ShardedByS3Key")
    r = ctx.job("sharded", m)
    t.check(r.rc == 0, r.show())
    for w in ["Worker algo-1: read 2 object(s)", "Worker algo-2: read 2 object(s)",
              "400 rows; sampled 50 rows (per-worker sample size 50)",
              "Using per-worker sample size = 50 ", "number of workers = 2"]:
        t.check(w in r.err, "log lacks %r\n%s" % (w, r.err))
    t.check(r.summary()["RowsSampled"] == 100, "summary %s" % r.summary())
    m = t.manifest("replicated", hps, ctx.uri("train/"), ctx.uri("out"), instances=2,
                   train_distribution="FullyReplicated")
    r = ctx.job("replicated", m)
    t.check(r.rc == 0, r.show())
    t.check("Worker algo-1: read 4 object(s)" in r.err and "Worker algo-2: read 4 object(s)" in r.err, r.err)
    t.check(r.summary()["Channels"]["train"]["rows"] == 1600, "both workers read every row: %s" % r.summary())
    index, labels, meta = t.faiss_model(ctx.model("sharded"))
    t.check(index.ntotal == 100, "ntotal %d" % index.ntotal)
    vecs = index.reconstruct_n(0, 100)
    worker = {}
    for i, (px, _) in enumerate(parts):
        for row in px:
            worker[row.tobytes()] = i % 2
    owners = [worker.get(v.astype(np.float32).tobytes()) for v in vecs]
    t.check(None not in owners, "an indexed vector is not a training row")
    t.check(owners.count(0) == 50 and owners.count(1) == 50, "rows per worker %d / %d" % (owners.count(0), owners.count(1)))


def case_manifest_file(ctx):
    """S3DataType ManifestFile (the SDK's .amazon.manifest): only the listed objects are read."""
    x, y = t.clusters(300, 8, 2, seed=17)
    for i in range(3):
        ctx.stage(("data/matrix_%d.pbr" % i), t.recordio_bytes(x[i * 100:(i + 1) * 100], y[i * 100:(i + 1) * 100]))
    manifest = [{"prefix": ctx.uri("data/")}, "matrix_0.pbr", "matrix_2.pbr"]
    ctx.stage(("data/.amazon.manifest"), json.dumps(manifest).encode())
    ctx.stage(("bad/.amazon.manifest"), json.dumps([{"prefix": ctx.uri("data/")}, "nope.pbr"]).encode())
    ctx.upload()
    m = t.manifest("manifest-file", HPS, ctx.uri("data/.amazon.manifest"), ctx.uri("out"), train_type="ManifestFile")
    r = ctx.job("manifest-file", m)
    t.check(r.rc == 0, r.show())
    s = r.summary()
    t.check(s["Channels"]["train"]["objects"] == 2 and s["Channels"]["train"]["rows"] == 200, "%s" % s)
    # A manifest naming a missing object fails before any data is read, with nothing written.
    m = t.manifest("manifest-missing", HPS, ctx.uri("bad/.amazon.manifest"), ctx.uri("out"), train_type="ManifestFile")
    r = ctx.job("manifest-missing", m)
    t.check(r.rc == 1 and "ClientError: " in r.err and "nope.pbr" in r.err, r.show())


def case_bad_inputs(ctx):
    """Bad manifests, hyperparameters and data: the expected reason, exit 1, nothing at the output
    path, no multipart upload left."""
    x, y = t.clusters(60, 8, 2, seed=19)
    good = t.recordio_bytes(x, y)
    size = len(good) // 60  # every record has the same size here
    ctx.stage(("good/a.pbr"), good)
    ctx.stage(("corrupt/a.pbr"), good[:3 * size] + b"\xef\xbe\xad\xde" + good[3 * size + 4:])
    ctx.stage(("truncated/a.pbr"), good[:-7])
    ctx.stage(("wide/a.pbr"), t.recordio_bytes(np.hstack([x, x]), y))
    ctx.stage(("csv/a.csv"), b"1,1,2,3,4,5,6,7,8\n1,1,2,3,4,5,6,7\n")
    ctx.upload()
    missing_bucket = "knn-no-such-bucket-%s" % uuid.uuid4().hex[:6]
    cases = [
        ("hyperparameters", dict(hps={"feature_dim": "8", "k": "5", "sample_size": "10", "predictor_type": "classifier",
                                      "index_type": "faiss.IVFPQ", "index_metric": "COSINE"}),
         "ClientError: Hyperparameter validation failed: index_metric 'COSINE' is not supported with index_type "
         "'faiss.IVFPQ' (use 'L2')"),
        ("unknown-field", dict(extra={"OutputDataConfigs": {}}), "ClientError: job manifest"),
        ("no-such-prefix", dict(train="nothing/"), "ClientError: channel 'train': no objects under"),
        ("no-such-bucket", dict(train_uri="s3://knn-no-such-bucket-%s/x/" % uuid.uuid4().hex[:6]), "ClientError: "),
        ("bad-magic", dict(train="corrupt/"), "corrupt/a.pbr: record 3 at offset %d: bad magic" % (3 * size)),
        ("truncated", dict(train="truncated/"), "truncated/a.pbr: record 59 at offset %d: truncated" % (59 * size)),
        ("wrong-width", dict(train="wide/"), "wide/a.pbr: record 0"),
        ("csv-columns", dict(train="csv/", ct="text/csv"), "csv/a.csv: line 2"),
        # An endpoint nothing listens on is the user's setting: a ClientError that says what to check.
        ("bad-endpoint", dict(extra={"EndpointUrl": "http://127.0.0.1:1"}),
         "ClientError: checking the output s3://"),
        ("bad-endpoint-hint", dict(extra={"EndpointUrl": "http://127.0.0.1:1"}),
         "cannot connect to the S3 endpoint http://127.0.0.1:1: "),
        # A password in the endpoint URL is never echoed.
        ("endpoint-password", dict(extra={"EndpointUrl": "http://knn:hunter2@127.0.0.1:1"}), "'http://***@127.0.0.1:1'"),
        # Found before any data is read, not at upload time after the whole job.
        ("no-output-bucket", dict(out_uri="s3://%s/out" % missing_bucket),
         "the output bucket '%s' does not exist" % missing_bucket),
        # Data in the other format than the channel declares: the message says which it is.
        ("recordio-as-csv", dict(train="good/", ct="text/csv"), "it is RecordIO-protobuf, not text/csv"),
        ("csv-as-recordio", dict(train="csv/"), "if it is CSV, its content type is text/csv"),
    ]
    for name, c, want in cases:
        train_uri = c.get("train_uri") or ctx.uri(c.get("train", "good/"))
        m = t.manifest("bad-" + name, c.get("hps", HPS), train_uri, c.get("out_uri") or ctx.uri("out"),
                       train_ct=c.get("ct"),
                       extra=c.get("extra"))
        r = ctx.job("bad-" + name, m, ["--no-progress"])
        t.check(r.rc == 1, "%s: exit %d\n%s" % (name, r.rc, r.show()))
        t.check(want in r.err, "%s: the log lacks %r\n%s" % (name, want, r.show()))
        t.check("hunter2" not in r.err + r.out, "%s: a password in the output\n%s" % (name, r.show()))
        t.check(r.summary()["FailureReason"].startswith(("ClientError: ", "AlgorithmError: ")), "%s" % r.summary())
    # Every job above used its own name: none of them left an object or a multipart upload.
    ctx.nothing_left("bad inputs")


def main():
    if len(sys.argv) != 2 or not hasattr(sys.modules[__name__], "case_" + sys.argv[1]):
        t.fail("usage: test_train_s3.py CASE")
    ctx = Ctx(sys.argv[1])
    try:
        getattr(sys.modules[__name__], "case_" + sys.argv[1])(ctx)
    finally:
        import shutil
        shutil.rmtree(ctx.tmp, ignore_errors=True)
        ctx.s3.close()
    print("ok")


if __name__ == "__main__":
    main()
