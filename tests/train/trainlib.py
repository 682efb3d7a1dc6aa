"""Helpers of the training-job tests: data written as the SageMaker SDK writes it, the expected
k-NN results computed independently (numpy brute force, FAISS on our index file), running
knn-runner, and S3 through /usr/bin/aws.

Nothing here uses knn-runner's own code to make data or expected values.
"""
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile

import numpy as np

RUNNER = os.environ.get("KNN_RUNNER", "knn-runner")
SKIP = 103


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


# ---- data, as the SageMaker SDK writes it (spec §4) ----

def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(tag, payload):
    return bytes([tag]) + _varint(len(payload)) + payload


def _map_entry(tag, values):
    """A features/label map entry {"values": Float32Tensor(values)}."""
    packed = struct.pack("<%df" % len(values), *values)
    tensor = _ld(0x0A, packed)          # Float32Tensor.values, packed
    value = _ld(0x12, tensor)           # Value.float32_tensor
    entry = _ld(0x0A, b"values") + _ld(0x12, value)
    return _ld(tag, entry)


def recordio_bytes(x, y=None):
    """RecordIO-protobuf of dense float32 rows (and labels), framed as the SDK frames them."""
    out = bytearray()
    for i in range(len(x)):
        payload = _map_entry(0x0A, [float(v) for v in x[i]])
        if y is not None:
            payload += _map_entry(0x12, [float(y[i])])
        out += struct.pack("<II", 0xCED7230A, len(payload)) + payload
        out += b"\0" * ((4 - len(payload) % 4) % 4)
    return bytes(out)


def csv_bytes(x, y):
    lines = []
    for i in range(len(x)):
        lines.append(",".join(["%.9g" % float(y[i])] + ["%.9g" % float(v) for v in x[i]]))
    return ("\n".join(lines) + "\n").encode()


def clusters(n, d, classes, seed, spread=3.5, centers_seed=1234):
    """Gaussian clusters: float32 rows, float32 class labels 0..classes-1. The cluster centres depend
    only on (d, classes, centers_seed), so train and test sets drawn with different seeds match."""
    centers = np.random.default_rng([centers_seed, d, classes]).normal(0, 3, size=(classes, d))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    x = centers[y] + rng.normal(0, spread, size=(n, d))
    return x.astype(np.float32), y.astype(np.float32)


def regression(n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, size=(n, d)).astype(np.float32)
    w = rng.normal(0, 1, size=d)
    y = (x @ w + 0.3 * np.sin(3 * x[:, 0]) + rng.normal(0, 0.1, size=n)).astype(np.float32)
    return x, y


# ---- the expected answers ----

def neighbours(train, queries, k, metric):
    """Indices of the k nearest rows of `train` for each query, best first (float64 brute force)."""
    a = train.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "COSINE":
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-30)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    if metric == "L2":
        score = (q * q).sum(1)[:, None] + (a * a).sum(1)[None, :] - 2 * q @ a.T
    else:
        score = -(q @ a.T)
    return np.argsort(score, axis=1, kind="stable")[:, :k]


def vote(labels_in_order):
    """Majority vote; ties: the label whose nearest occurrence comes first (spec §2.7)."""
    counts = {}
    first = {}
    for pos, lab in enumerate(labels_in_order):
        counts[lab] = counts.get(lab, 0) + 1
        first.setdefault(lab, pos)
    best = max(counts.values())
    tied = [lab for lab in counts if counts[lab] == best]
    return min(tied, key=lambda lab: (first[lab], lab))


def predict(neigh_labels, predictor):
    if predictor == "classifier":
        return np.array([vote(list(row)) for row in neigh_labels], dtype=np.float64)
    return neigh_labels.astype(np.float64).mean(axis=1)


def score(pred, truth, predictor):
    if predictor == "classifier":
        return "accuracy", float(np.mean(pred == truth.astype(np.float64)))
    return "mse", float(np.mean((pred - truth.astype(np.float64)) ** 2))


def expected_score(train_x, train_y, test_x, test_y, k, metric, predictor):
    idx = neighbours(train_x, test_x, k, metric)
    return score(predict(train_y[idx], predictor), test_y, predictor)


# ---- running knn-runner ----

TEST_SCORE = re.compile(r"#test_score \((algo-\d+)\) : \('(accuracy|mse)', ([-+0-9.eE]+|nan)\)$", re.M)


def py2_repr(value):
    """A float as SageMaker's #test_score prints it (Python 2's float64 repr: numpy's legacy 1.13 mode)."""
    with np.printoptions(legacy="1.13"):
        return repr(np.float64(value))


class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def test_score(self):
        found = TEST_SCORE.findall(self.err)
        check(len(found) == 1, "expected one #test_score line, found %d:\n%s" % (len(found), self.err))
        host, name, value = found[0]
        check(value == py2_repr(float(value)), "#test_score value %r is not printed as SageMaker's Python 2 repr %r"
              % (value, py2_repr(float(value))))
        return name, float(value)

    def summary(self):
        return json.loads(self.out)

    def show(self):
        return "exit %d\n--- stdout\n%s\n--- stderr\n%s" % (self.rc, self.out, self.err[-6000:])


def run_train(args, env=None, timeout=300):
    e = dict(os.environ)
    e.update(env or {})
    e.setdefault("KNN_LOG_LEVEL", "info")
    p = subprocess.run([RUNNER, "train"] + list(args), env=e, capture_output=True, text=True, timeout=timeout)
    return Result(p)


def manifest(name, hps, train_uri, output_uri, test_uri=None, train_ct=None, test_ct=None, instances=1,
             train_distribution=None, train_type="S3Prefix", extra=None, endpoint=None):
    def channel(cname, uri, ct, dist, dtype):
        s3 = {"S3DataType": dtype, "S3Uri": uri}
        if dist:
            s3["S3DataDistributionType"] = dist
        ch = {"ChannelName": cname, "DataSource": {"S3DataSource": s3}}
        if ct:
            ch["ContentType"] = ct
        return ch
    m = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": "382416733822.dkr.ecr.us-east-1.amazonaws.com/knn:1",
                                   "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
        "HyperParameters": {k: (v if isinstance(v, str) else str(v)) for k, v in hps.items()},
        "InputDataConfig": [channel("train", train_uri, train_ct, train_distribution, train_type)],
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": instances, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    if test_uri:
        m["InputDataConfig"].append(channel("test", test_uri, test_ct, "FullyReplicated", "S3Prefix"))
    if endpoint:
        m["EndpointUrl"] = endpoint
    if extra:
        m.update(extra)
    return m


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


# ---- the model ----

MODEL_FILES = ["model_algo-1", "model_algo-1.json", "model_algo-1.labels"]


def read_model_tar(data):
    """Members of a model.tar.gz (bytes): checks the SageMaker layout, returns {name: bytes}."""
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for m in tar.getmembers():
            name = m.name[2:] if m.name.startswith("./") else m.name
            check(m.isfile(), "model.tar.gz member %r is not a regular file" % m.name)
            check("/" not in name, "model.tar.gz member %r is not at the top level" % m.name)
            files[name] = tar.extractfile(m).read()
    check(sorted(files) == MODEL_FILES, "model.tar.gz members %s, expected %s" % (sorted(files), MODEL_FILES))
    return files


def faiss_model(files):
    """The index (python3-faiss), the labels, the metadata of a model's files."""
    import faiss
    d = tempfile.mkdtemp()
    try:
        path = os.path.join(d, "model_algo-1")
        with open(path, "wb") as f:
            f.write(files["model_algo-1"])
        index = faiss.read_index(path)
    finally:
        shutil.rmtree(d)
    labels = np.frombuffer(files["model_algo-1.labels"], dtype="<f4")
    meta = json.loads(files["model_algo-1.json"])
    check(index.ntotal == len(labels), "index has %d vectors, labels file %d" % (index.ntotal, len(labels)))
    return index, labels, meta


def faiss_score(index, labels, meta, test_x, test_y, predictor, metric):
    """Score the test rows by searching our index file with FAISS itself (no dimension reduction)."""
    import faiss
    q = test_x.astype(np.float32).copy()
    if metric == "COSINE":
        faiss.normalize_L2(q)
    if q.shape[1] < index.d:  # IVFPQ zero padding (spec §2.6)
        q = np.hstack([q, np.zeros((q.shape[0], index.d - q.shape[1]), dtype=np.float32)])
    if "nprobe" in meta and hasattr(index, "nprobe"):
        faiss.extract_index_ivf(index).nprobe = int(meta["nprobe"])
    k = min(int(meta["k"]), index.ntotal)
    _, ids = index.search(q, k)
    return score(predict(labels[ids], predictor), test_y, predictor)


# ---- S3 through the AWS CLI ----

class S3:
    """The local S3 server of the s3_server fixture (or of $KNN_S3_ENV_FILE), used with /usr/bin/aws."""

    def __init__(self):
        path = os.environ.get("KNN_S3_ENV_FILE", "")
        if not path or not os.path.exists(path):
            print("SKIP: no local S3 server (KNN_S3_ENV_FILE=%r)" % path, file=sys.stderr)
            sys.exit(SKIP)
        self.env = {}
        for line in open(path):
            line = line.strip()
            if line.startswith("export "):
                line = line[7:]
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                self.env[k] = v.strip("'\"")
        self.endpoint = self.env["AWS_ENDPOINT_URL"]
        self.bucket = self.env.get("KNN_S3_BUCKET", "knn-test")
        self.tmp = tempfile.mkdtemp(prefix="knn-train-aws-")
        with open(os.path.join(self.tmp, "config"), "w") as f:
            f.write("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
        self.cli_env = dict(os.environ)
        self.cli_env.update(self.env)
        self.cli_env.update({"AWS_CONFIG_FILE": os.path.join(self.tmp, "config"),
                             "AWS_SHARED_CREDENTIALS_FILE": os.path.join(self.tmp, "none"),
                             "AWS_PAGER": ""})

    def aws(self, *args, check_rc=True, data=None):
        p = subprocess.run(["/usr/bin/aws", "--endpoint-url", self.endpoint] + list(args), env=self.cli_env,
                           capture_output=True, input=data, timeout=120)
        if check_rc and p.returncode != 0:
            fail("aws %s: %s" % (" ".join(args), p.stderr.decode(errors="replace")))
        return p

    def put(self, key, data):
        self.aws("s3api", "put-object", "--bucket", self.bucket, "--key", key, "--body", self._file(data))

    def put_tree(self, local_dir, prefix):
        """Upload every file below local_dir to prefix + its relative path (one aws call)."""
        self.aws("s3", "cp", "--recursive", "--only-show-errors", local_dir, "s3://%s/%s" % (self.bucket, prefix))

    def get_tree(self, prefix, local_dir):
        """Download every object below prefix into local_dir (one aws call)."""
        self.aws("s3", "cp", "--recursive", "--only-show-errors", "s3://%s/%s" % (self.bucket, prefix), local_dir)

    def _file(self, data):
        fd, path = tempfile.mkstemp(dir=self.tmp)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return path

    def get(self, key):
        path = os.path.join(self.tmp, "download")
        self.aws("s3api", "get-object", "--bucket", self.bucket, "--key", key, path)
        with open(path, "rb") as f:
            return f.read()

    def keys(self, prefix):
        p = self.aws("s3api", "list-objects-v2", "--bucket", self.bucket, "--prefix", prefix)
        out = p.stdout.decode().strip()
        return sorted(o["Key"] for o in json.loads(out).get("Contents", [])) if out else []

    def uploads(self, prefix):
        p = self.aws("s3api", "list-multipart-uploads", "--bucket", self.bucket, "--prefix", prefix)
        out = p.stdout.decode().strip()
        return json.loads(out).get("Uploads", []) if out else []

    def uri(self, key):
        return "s3://%s/%s" % (self.bucket, key)

    def run_env(self):
        return dict(self.env)

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
