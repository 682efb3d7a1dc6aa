"""Training jobs without S3: file:// channels and output, and the /opt/ml container contract.

    test_train_local.py CASE      (CASE: one of the functions named case_*)

Expected scores come from a numpy brute-force k-NN and from FAISS searching our index file.
"""
import json
import os
import signal
import stat
import sys
import tempfile
import threading
import time

import numpy as np

import trainlib as t

HPS = {"feature_dim": 8, "k": 5, "sample_size": 10000, "predictor_type": "classifier"}


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _tree(tmp):
    """A classifier data set in three train objects (one nested) and one test object."""
    x, y = t.clusters(900, 8, 4, seed=11)
    tx, ty = t.clusters(240, 8, 4, seed=12)
    _write(os.path.join(tmp, "train", "part-0.rec"), t.recordio_bytes(x[:300], y[:300]))
    _write(os.path.join(tmp, "train", "sub", "part-1.rec"), t.recordio_bytes(x[300:700], y[300:700]))
    _write(os.path.join(tmp, "train", "z-part-2.rec"), t.recordio_bytes(x[700:], y[700:]))
    _write(os.path.join(tmp, "test", "test.rec"), t.recordio_bytes(tx, ty))
    return x, y, tx, ty


def case_classifier_recordio(tmp):
    x, y, tx, ty = _tree(tmp)
    out = os.path.join(tmp, "out")
    m = t.manifest("local-classifier", HPS, "file://" + os.path.join(tmp, "train"), "file://" + out,
                   test_uri="file://" + os.path.join(tmp, "test"))
    t.write_json(os.path.join(tmp, "job.json"), m)
    r = t.run_train(["--manifest", os.path.join(tmp, "job.json"), "--json"])
    t.check(r.rc == 0, "job failed: " + r.show())
    name, value = r.test_score()
    want = t.expected_score(x, y, tx, ty, 5, "L2", "classifier")
    t.check((name, value) == want, "test score %s, expected %s (numpy brute force)" % ((name, value), want))
    t.check(0.5 < value < 1.0, "accuracy %g is not a useful test" % value)

    tar_path = os.path.join(out, "local-classifier", "output", "model.tar.gz")
    files = t.read_model_tar(open(tar_path, "rb").read())
    index, labels, meta = t.faiss_model(files)
    t.check(index.ntotal == 900 and index.d == 8, "index %d x %d, expected 900 x 8" % (index.ntotal, index.d))
    t.check(meta["k"] == 5 and meta["predictor_type"] == "classifier", "model json %s" % meta)
    got = t.faiss_score(index, labels, meta, tx, ty, "classifier", "L2")
    t.check(got == want, "FAISS on our index scores %s, expected %s" % (got, want))
    # The index holds exactly the training rows, with their labels.
    vecs = index.reconstruct_n(0, index.ntotal)
    t.check(sorted(map(tuple, np.hstack([vecs, labels[:, None]]).tolist())) ==
            sorted(map(tuple, np.hstack([x, y[:, None]]).tolist())), "the index does not hold the training rows")

    s = r.summary()
    t.check(s["TrainingJobStatus"] == "Completed", "summary %s" % s)
    t.check(s["Channels"]["train"] == {"objects": 3, "bytes": sum(
        os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(os.path.join(tmp, "train")) for f in fs),
        "rows": 900}, "train channel summary %s" % s["Channels"]["train"])
    t.check(s["Channels"]["test"]["rows"] == 240, "test rows %s" % s["Channels"]["test"])
    t.check(s["RowsSampled"] == 900 and s["IndexVectors"] == 900, "summary counts %s" % s)
    t.check(s["FinalMetrics"] == {"test:accuracy": value}, "summary metrics %s" % s["FinalMetrics"])
    t.check(s["ModelArtifacts"] == "file://" + tar_path, "artifact %s" % s["ModelArtifacts"])
    t.check(s["PeakMemoryBytes"] > 0 and s["HyperParameters"]["k"] == "5", "summary %s" % s)
    written = json.load(open(os.path.join(out, "local-classifier", "output", "job-summary.json")))
    t.check(written["FinalMetrics"] == s["FinalMetrics"], "job-summary.json differs from stdout")
    # SageMaker's preamble and the per-worker line.
    for line in ["Reading default configuration from", "Final configuration: {'feature_dim': '8', 'k': '5'",
                 "Using per-worker sample size = 10000 (Available virtual memory = ",
                 "Worker algo-1: read 3 object(s)"]:
        t.check(line in r.err, "log lacks %r:\n%s" % (line, r.err))

    # The same job again is refused, and leaves the model alone; --overwrite replaces it.
    before = open(tar_path, "rb").read()
    r2 = t.run_train(["--manifest", os.path.join(tmp, "job.json")])
    t.check(r2.rc == 1 and "ClientError: " in r2.err and "already exists" in r2.err, r2.show())
    t.check(open(tar_path, "rb").read() == before, "a refused job changed the model")
    r3 = t.run_train(["--manifest", os.path.join(tmp, "job.json"), "--overwrite"])
    t.check(r3.rc == 0, r3.show())


def case_regressor_csv(tmp):
    x, y = t.regression(700, 6, seed=21)
    tx, ty = t.regression(150, 6, seed=22)
    _write(os.path.join(tmp, "train", "a.csv"), t.csv_bytes(x[:350], y[:350]))
    _write(os.path.join(tmp, "train", "b.csv"), t.csv_bytes(x[350:], y[350:]))
    _write(os.path.join(tmp, "test", "t.csv"), t.csv_bytes(tx, ty))
    hps = {"feature_dim": 6, "k": 7, "sample_size": 5000, "predictor_type": "regressor"}
    m = t.manifest("local-regressor", hps, "file://" + os.path.join(tmp, "train"), "file://" + tmp + "/out",
                   test_uri="file://" + os.path.join(tmp, "test"), train_ct="text/csv", test_ct="text/csv;label_size=1")
    t.write_json(os.path.join(tmp, "job.json"), m)
    r = t.run_train(["--manifest", os.path.join(tmp, "job.json"), "--threads", "2"])
    t.check(r.rc == 0, "job failed: " + r.show())
    name, value = r.test_score()
    want_name, want = t.expected_score(x, y, tx, ty, 7, "L2", "regressor")
    t.check(name == "mse" and abs(value - want) <= 1e-5 * max(want, 1e-9),
            "test score %s %.17g, expected mse %.17g" % (name, value, want))


def case_gzip_pipe(tmp):
    """Pipe mode with CompressionType Gzip: objects are gunzipped as they stream (several gzip members
    in one object too); File mode refuses Gzip naming File mode; bad gzip names the object and offset."""
    import gzip
    x, y, tx, ty = _tree(tmp)
    raw = open(os.path.join(tmp, "train", "part-0.rec"), "rb").read()
    half = len(raw) // 2
    _write(os.path.join(tmp, "gz", "train", "part-0.rec.gz"), gzip.compress(raw[:half]) + gzip.compress(raw[half:]))
    _write(os.path.join(tmp, "gz", "train", "sub", "part-1.rec.gz"),
           gzip.compress(open(os.path.join(tmp, "train", "sub", "part-1.rec"), "rb").read()))
    _write(os.path.join(tmp, "gz", "train", "z-part-2.rec.gz"),
           gzip.compress(open(os.path.join(tmp, "train", "z-part-2.rec"), "rb").read()))
    _write(os.path.join(tmp, "gz", "test", "test.rec.gz"), gzip.compress(t.recordio_bytes(tx, ty)))

    def job(name, train_dir, mode, per_channel=False):
        m = t.manifest(name, HPS, "file://" + os.path.join(tmp, train_dir, "train"), "file://" + tmp + "/out",
                       test_uri="file://" + os.path.join(tmp, train_dir, "test"))
        for ch in m["InputDataConfig"]:
            ch["CompressionType"] = "Gzip"
            if per_channel:
                ch["InputMode"] = mode
        if not per_channel:
            m["AlgorithmSpecification"]["TrainingInputMode"] = mode
        t.write_json(os.path.join(tmp, name + ".json"), m)
        return t.run_train(["--manifest", os.path.join(tmp, name + ".json"), "--no-progress"])

    r = job("gzip-pipe", "gz", "Pipe")
    t.check(r.rc == 0, r.show())
    want = t.expected_score(x, y, tx, ty, 5, "L2", "classifier")
    t.check(r.test_score() == want, "gzip Pipe score %s, expected %s (numpy on the uncompressed rows)"
            % (r.test_score(), want))
    r = job("gzip-pipe-channel", "gz", "Pipe", per_channel=True)
    t.check(r.rc == 0 and r.test_score() == want, r.show())

    # One small compressed chunk that inflates to many output buffers (540 KB of CSV from ~1 KB).
    _write(os.path.join(tmp, "big", "train", "rows.csv.gz"), gzip.compress(b"1,0,1,2,3,4,5,6,7\n" * 30000))
    _write(os.path.join(tmp, "big", "test", "t.csv.gz"), gzip.compress(b"1,0,1,2,3,4,5,6,7\n" * 3))
    m = t.manifest("gzip-big", HPS, "file://" + os.path.join(tmp, "big", "train"), "file://" + tmp + "/out",
                   test_uri="file://" + os.path.join(tmp, "big", "test"), train_ct="text/csv", test_ct="text/csv")
    for ch in m["InputDataConfig"]:
        ch["CompressionType"] = "Gzip"
        ch["InputMode"] = "Pipe"
    t.write_json(os.path.join(tmp, "gzip-big.json"), m)
    r = t.run_train(["--manifest", os.path.join(tmp, "gzip-big.json"), "--no-progress", "--json"])
    t.check(r.rc == 0 and r.summary()["Channels"]["train"]["rows"] == 30000, r.show())
    t.check(r.test_score() == ("accuracy", 1.0), r.show())

    r = job("gzip-file", "gz", "File")
    t.check(r.rc == 1 and "InputDataConfig[0].CompressionType: 'Gzip' needs Pipe input mode: this channel is in "
            "File mode, which only supports None" in r.err, r.show())
    t.check("File mode only supports None" not in r.err.replace("File mode, which only supports None", ""), r.err)

    # Not gzip at all, and gzip cut short: the object and the compressed offset are named.
    _write(os.path.join(tmp, "bad", "test", "test.rec.gz"), gzip.compress(t.recordio_bytes(tx, ty)))
    _write(os.path.join(tmp, "bad", "train", "a.rec.gz"), raw)
    r = job("gzip-notgz", "bad", "Pipe")
    t.check(r.rc == 1 and "a.rec.gz: gzip (CompressionType Gzip): not gzip data at compressed byte" in r.err,
            r.show())
    cut = gzip.compress(raw)
    _write(os.path.join(tmp, "bad", "train", "a.rec.gz"), cut[:len(cut) // 2])
    r = job("gzip-cut", "bad", "Pipe")
    t.check(r.rc == 1 and "a.rec.gz: gzip (CompressionType Gzip): cut short at compressed byte %d" % (len(cut) // 2)
            in r.err, r.show())


def case_bad_inputs(tmp):
    """Each bad manifest, hyperparameter set or data object fails with its reason and leaves no output."""
    x, y = t.clusters(50, 8, 2, seed=3)
    good = t.recordio_bytes(x, y)
    _write(os.path.join(tmp, "good", "a.rec"), good)
    size = len(good) // 50  # every record has the same size here
    _write(os.path.join(tmp, "badmagic", "a.rec"), good[:2 * size] + b"\xef\xbe\xad\xde" + good[2 * size + 4:])
    _write(os.path.join(tmp, "truncated", "a.rec"), good[:-10])
    _write(os.path.join(tmp, "wide", "a.rec"), t.recordio_bytes(np.hstack([x, x[:, :1]]), y))
    _write(os.path.join(tmp, "nolabel", "a.rec"), t.recordio_bytes(x))
    _write(os.path.join(tmp, "csv", "a.csv"), b"1,2,3,4,5,6,7,8,9\n0,1,2,3,abc,5,6,7,8\n")
    _write(os.path.join(tmp, "nan", "a.csv"), b"1,2,3,4,5,6,7,8,nan\n")
    _write(os.path.join(tmp, "empty", "a.rec"), b"")
    os.makedirs(os.path.join(tmp, "nothing"))
    out = os.path.join(tmp, "out")

    def uri(d):
        return "file://" + os.path.join(tmp, d)

    cases = [
        # (name, manifest changes, expected text in the reason)
        ("hp-many", dict(hps={"feature_dim": "eight", "k": "0", "predictor_type": "Classifier", "bogus": "1"}),
         "ClientError: Hyperparameter validation failed: No value(s) were specified for 'sample_size' which are "
         "required hyperparameter(s); Additional hyperparameters are not allowed ('bogus' was unexpected); "
         "feature_dim: 'eight' is not valid"),
        ("hp-ivfpq", dict(hps=dict(HPS, index_type="faiss.IVFPQ", index_metric="COSINE")),
         "index_metric 'COSINE' is not supported with index_type 'faiss.IVFPQ'"),
        ("manifest-field", dict(extra={"TrainingJobNam": "x"}), "ClientError: job manifest"),
        ("no-objects", dict(train="nothing"), "ClientError: channel 'train': no objects under"),
        ("missing-dir", dict(train="does-not-exist"), "ClientError: channel 'train':"),
        ("bad-magic", dict(train="badmagic"), "a.rec: record 2 at offset %d" % (2 * size)),
        ("truncated", dict(train="truncated"), "a.rec: "),
        ("wrong-width", dict(train="wide"), "a.rec: record 0 at offset 0: 9 features, expected feature_dim 8"),
        ("no-label", dict(train="nolabel"), "ClientError: "),
        ("csv-not-a-number", dict(train="csv", ct="text/csv"), "a.csv: line 2, column 5"),
        ("csv-nan", dict(train="nan", ct="text/csv;label_size=1"), "ClientError: "),
        ("csv-label-size", dict(train="csv", ct="text/csv;label_size=0"), "k-NN needs one label per row"),
        ("empty", dict(train="empty"), "ClientError: channel 'train' holds no rows"),
        ("bad-test", dict(test="badmagic"), "a.rec: record 2 at offset %d" % (2 * size)),
    ]
    for name, ch, want in cases:
        m = t.manifest("bad-" + name, ch.get("hps", HPS), uri(ch.get("train", "good")), "file://" + out,
                       test_uri=uri(ch["test"]) if "test" in ch else None, train_ct=ch.get("ct"),
                       extra=ch.get("extra"))
        path = os.path.join(tmp, name + ".json")
        t.write_json(path, m)
        r = t.run_train(["--manifest", path, "--json"])
        t.check(r.rc == 1, "%s: exit %d, expected 1\n%s" % (name, r.rc, r.show()))
        t.check(want in r.err, "%s: the log lacks %r\n%s" % (name, want, r.show()))
        reason = [l for l in r.err.splitlines() if "ERROR" in l and ("ClientError:" in l or "AlgorithmError:" in l)]
        t.check(reason, "%s: no failure reason line\n%s" % (name, r.show()))
        s = r.summary()
        t.check(s["TrainingJobStatus"] == "Failed" and s["FailureReason"].startswith(("ClientError: ", "AlgorithmError: ")),
                "%s: summary %s" % (name, s))
        left = os.listdir(out) if os.path.exists(out) else []
        t.check(left == [], "%s: left output %s" % (name, left))
    # The data case csv-nan fails on the value, not on the label_size.
    t.check(True, "")


def _opt_ml(tmp, inputdataconfig, hps):
    base = os.path.join(tmp, "opt_ml")
    # Only the inputs, as a local user lays them out: the job creates model/ and output/ itself
    # (SageMaker makes them; a hand-made tree may not have them).
    for d in ["input/config", "input/data"]:
        os.makedirs(os.path.join(base, d), exist_ok=True)
    t.write_json(os.path.join(base, "input/config/hyperparameters.json"), hps)
    t.write_json(os.path.join(base, "input/config/inputdataconfig.json"), inputdataconfig)
    t.write_json(os.path.join(base, "input/config/resourceconfig.json"),
                 {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"})
    return base


def case_container(tmp):
    x, y = t.clusters(400, 8, 3, seed=31)
    tx, ty = t.clusters(100, 8, 3, seed=32)
    hps = {k: str(v) for k, v in HPS.items()}
    base = _opt_ml(tmp, {"train": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                                   "RecordWrapperType": "None"},
                         "test": {"ContentType": "text/csv;label_size=1", "TrainingInputMode": "File"}}, hps)
    _write(os.path.join(base, "input/data/train/b/2.rec"), t.recordio_bytes(x[200:], y[200:]))
    _write(os.path.join(base, "input/data/train/a.rec"), t.recordio_bytes(x[:200], y[:200]))
    _write(os.path.join(base, "input/data/test/test.csv"), t.csv_bytes(tx, ty))
    env = {"SAGEMAKER_BASE_DIR": base, "TRAINING_JOB_NAME": "container-job"}
    r = t.run_train([], env=env)
    t.check(r.rc == 0, r.show())
    t.check("Docker entrypoint called with argument(s): train" in r.err, r.err)
    t.check(r.test_score() == t.expected_score(x, y, tx, ty, 5, "L2", "classifier"), r.err)
    t.check(sorted(os.listdir(os.path.join(base, "model"))) == t.MODEL_FILES,
            "model dir: %s" % os.listdir(os.path.join(base, "model")))
    t.check(not os.path.exists(os.path.join(base, "output/failure")), "a failure file after success")
    files = {n: open(os.path.join(base, "model", n), "rb").read() for n in t.MODEL_FILES}
    index, labels, meta = t.faiss_model(files)
    t.check(index.ntotal == 400, "ntotal %d" % index.ntotal)
    s = json.load(open(os.path.join(base, "output/data/job-summary.json")))
    t.check(s["TrainingJobName"] == "container-job" and s["TrainingJobStatus"] == "Completed", "%s" % s)

    # A second run refuses to replace the model; bad hyperparameters fail with the failure file.
    t.write_json(os.path.join(base, "input/config/hyperparameters.json"), dict(hps, k="2000"))
    for f in t.MODEL_FILES:
        os.unlink(os.path.join(base, "model", f))
    r = t.run_train([], env=env)
    t.check(r.rc == 1, r.show())
    failure = open(os.path.join(base, "output/failure")).read()
    t.check(failure.startswith("ClientError: Hyperparameter validation failed: k: '2000' is out of range"),
            "failure file: %r" % failure)
    t.check(os.listdir(os.path.join(base, "model")) == [], "model dir after failure: %s" % os.listdir(os.path.join(base, "model")))


def _feed_fifo(path, rows, interval, stop):
    """Write one record every `interval` seconds until stopped (a slow Pipe-mode channel)."""
    x, y = t.clusters(rows, 8, 2, seed=5)
    try:
        with open(path, "wb", buffering=0) as f:
            for i in range(rows):
                if stop.is_set():
                    return
                f.write(t.recordio_bytes(x[i:i + 1], y[i:i + 1]))
                time.sleep(interval)
    except BrokenPipeError:
        pass


def case_max_runtime(tmp):
    """MaxRuntimeInSeconds stops a job that is still reading, with a ClientError and no output."""
    fifo = os.path.join(tmp, "train.fifo")
    os.mkfifo(fifo)
    stop = threading.Event()
    feeder = threading.Thread(target=_feed_fifo, args=(fifo, 1000, 0.05, stop), daemon=True)
    feeder.start()
    m = t.manifest("deadline", HPS, "file://" + fifo, "file://" + tmp + "/out")
    m["StoppingCondition"]["MaxRuntimeInSeconds"] = 2
    t.write_json(os.path.join(tmp, "job.json"), m)
    t0 = time.time()
    r = t.run_train(["--manifest", os.path.join(tmp, "job.json")], timeout=120)
    stop.set()
    t.check(r.rc == 1, r.show())
    t.check("ClientError: the job reached its MaxRuntimeInSeconds (2 s) and was stopped" in r.err, r.show())
    t.check(not os.path.exists(os.path.join(tmp, "out")), "output left behind")


def case_sigterm_container(tmp):
    """SIGTERM in container Pipe mode: the job stops, writes the failure file, exits non-zero."""
    base = _opt_ml(tmp, {"train": {"TrainingInputMode": "Pipe"}}, {k: str(v) for k, v in HPS.items()})
    fifo = os.path.join(base, "input/data/train_0")
    os.mkfifo(fifo)
    stop = threading.Event()
    feeder = threading.Thread(target=_feed_fifo, args=(fifo, 1000, 0.05, stop), daemon=True)
    feeder.start()
    import subprocess
    env = dict(os.environ, SAGEMAKER_BASE_DIR=base)
    p = subprocess.Popen([t.RUNNER, "train"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait until it is reading (a progress or worker line is not needed: the FIFO has a reader).
    time.sleep(1.5)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    stop.set()
    t.check(p.returncode == 1, "exit %d\n%s" % (p.returncode, err))
    failure = open(os.path.join(base, "output/failure")).read()
    t.check(failure == "ClientError: the job was stopped by SIGTERM", "failure file %r\n%s" % (failure, err))
    t.check(os.listdir(os.path.join(base, "model")) == [], "model files after SIGTERM")


def case_dry_run(tmp):
    """--dry-run validates and plans, then stops: no data read, nothing written; a bad job still fails."""
    _tree(tmp)
    out = os.path.join(tmp, "out")
    m = t.manifest("local-dry", HPS, "file://" + os.path.join(tmp, "train"), "file://" + out)
    t.write_json(os.path.join(tmp, "job.json"), m)
    r = t.run_train(["--manifest", os.path.join(tmp, "job.json"), "--dry-run", "--json"])
    t.check(r.rc == 0, r.show())
    s = r.summary()
    t.check(s["TrainingJobStatus"] == "Validated", "summary %s" % s)
    t.check(s["Channels"]["train"]["objects"] == 3 and s["Channels"]["train"]["rows"] == 0, "summary %s" % s)
    t.check("#test_score" not in r.err and not os.path.exists(out), "a dry run wrote %s" % out)
    # The same checks as a real job: bad hyperparameters fail, with the same reason.
    m["HyperParameters"]["k"] = "0"
    t.write_json(os.path.join(tmp, "job.json"), m)
    r = t.run_train(["--manifest", os.path.join(tmp, "job.json"), "--dry-run"])
    t.check(r.rc == 1 and "ClientError: Hyperparameter validation failed: k:" in r.err, r.show())
    t.check(not os.path.exists(out), "a failed dry run wrote %s" % out)


def main():
    if len(sys.argv) != 2 or not hasattr(sys.modules[__name__], "case_" + sys.argv[1]):
        t.fail("usage: test_train_local.py CASE")
    tmp = tempfile.mkdtemp(prefix="knn-train-")
    try:
        getattr(sys.modules[__name__], "case_" + sys.argv[1])(tmp)
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    main()
