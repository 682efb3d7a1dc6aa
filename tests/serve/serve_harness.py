"""Shared helpers of the serve and transform tests (Debian's /usr/bin/python3, stdlib + numpy).

Servers are started the way redis's tests start theirs: a fresh temporary directory per test,
`knn-runner serve --port 0`, wait for the "ready on port N" line, capture the log, stop by pid
(SIGTERM) and check the exit status, so a crash or a sanitizer report fails the test.
"""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

RUNNER = os.environ.get("KNN_RUNNER", "knn-runner")
BINARY_DIR = os.environ.get("KNN_BINARY_DIR", ".")
MAKE_MODEL = os.path.join(BINARY_DIR, "tests", "serve", "make_model")

RESULTS = {"passed": 0, "failed": 0}


def check(cond, what):
    """Count one check; print the failures."""
    if cond:
        RESULTS["passed"] += 1
    else:
        RESULTS["failed"] += 1
        print("FAIL:", what, flush=True)
    return cond


def finish():
    """Print the closing line and exit non-zero on any failure."""
    print("%d passed, %d failed" % (RESULTS["passed"], RESULTS["failed"]), flush=True)
    sys.exit(1 if RESULTS["failed"] or RESULTS["passed"] == 0 else 0)


class TempDir:
    def __init__(self, name):
        self.path = tempfile.mkdtemp(prefix="knn-%s-" % name)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


# ---- models ----

def make_model(out_dir, x, labels, k, predictor="classifier", metric="L2", index="faiss.Flat", nlist=0, pq_m=0):
    """Build and save a model with our algorithms library (tests/serve/make_model)."""
    os.makedirs(out_dir, exist_ok=True)
    xf = os.path.join(out_dir, "..", os.path.basename(out_dir) + ".x.f32")
    lf = os.path.join(out_dir, "..", os.path.basename(out_dir) + ".labels.f32")
    np.asarray(x, dtype="<f4").tofile(xf)
    np.asarray(labels, dtype="<f4").tofile(lf)
    args = [MAKE_MODEL, out_dir, xf, lf, str(x.shape[1]), str(k), predictor, metric, index]
    if nlist:
        args += [str(nlist), str(pq_m)]
    subprocess.run(args, check=True)
    return out_dir


def brute_force(x, labels, queries, k, metric="L2", predictor="classifier"):
    """Independent reference: exact top-k (float64 numpy), SageMaker's conventions (spec 3.3, 2.7)."""
    x = np.asarray(x, dtype=np.float64)
    q = np.asarray(queries, dtype=np.float64)
    if metric == "COSINE":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    if metric == "L2":
        d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        order = np.argsort(d, axis=1, kind="stable")[:, :k]
    else:
        d = q @ x.T
        order = np.argsort(-d, axis=1, kind="stable")[:, :k]
    dist = np.take_along_axis(d, order, axis=1)
    lab = np.asarray(labels, dtype=np.float32)[order]
    preds = []
    for row in lab:
        if predictor == "regressor":
            preds.append(float(np.float32(row.astype(np.float64).mean())))
        else:
            counts = {}
            for v in row:
                counts[float(v)] = counts.get(float(v), 0) + 1
            best = max(counts.values())
            # tie: the label whose nearest occurrence comes first
            preds.append(next(float(v) for v in row if counts[float(v)] == best))
    return np.array(preds), lab, dist


def close_enough(got, want, tol=1e-3):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    return got.shape == want.shape and bool(np.all(np.abs(got - want) <= tol * (1 + np.abs(want))))


def same_neighbours(got_labels, want_labels, want_dist, tol=1e-3):
    """Labels in order; a difference is allowed only where the reference distances tie."""
    got_labels = np.asarray(got_labels, dtype=np.float32)
    if got_labels.shape != want_labels.shape:
        return False
    for i in np.nonzero(got_labels != want_labels)[0]:
        if not any(abs(want_dist[j] - want_dist[i]) <= tol * (1 + abs(want_dist[i]))
                   for j in range(len(want_dist)) if j != i):
            return False
    return True


# ---- the server ----

class Server:
    """knn-runner serve on a free port; use as a context manager."""

    def __init__(self, model, tmp, args=(), env=None, port_flag=True, prefix=()):
        self.log_path = os.path.join(tmp, "serve.log")
        e = dict(os.environ)
        e.pop("SAGEMAKER_BIND_TO_PORT", None)
        if env:
            e.update(env)
        self.log = open(self.log_path, "w+b")
        args = list(args) + os.environ.get("KNN_TEST_SERVE_ARGS", "").split()  # extra flags, for debugging
        if env and "SAGEMAKER_BIND_TO_PORT" in env:
            e["SAGEMAKER_BIND_TO_PORT"] = env["SAGEMAKER_BIND_TO_PORT"]
        cmd = list(prefix) + [RUNNER, "serve", "--model", model, "--host", "127.0.0.1"] + (["--port", "0"] if port_flag else [])
        self.proc = subprocess.Popen(cmd + list(args), stdout=subprocess.DEVNULL, stderr=self.log, env=e)
        self.port = None
        deadline = time.time() + 60
        while time.time() < deadline:
            text = self.log_text()
            m = re.search(r"ready on port (\d+)", text)
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise RuntimeError("server did not become ready:\n" + self.log_text())

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def request(self, method, path, body=None, headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), resp.read()
        finally:
            conn.close()

    def invoke(self, body, content_type, accept=None):
        headers = {"Content-Type": content_type}
        if accept is not None:
            headers["Accept"] = accept
        if isinstance(body, str):
            body = body.encode()
        return self.request("POST", "/invocations", body, headers)

    def healthy(self):
        status, _, _ = self.request("GET", "/ping")
        return status == 200

    def stop(self):
        """SIGTERM, wait, return the exit status (None if it had to be killed)."""
        code = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        else:
            code = self.proc.returncode
        self.log.close()
        return code

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        code = self.stop()
        if not check(code == 0, "server exit status %r (expected 0 after SIGTERM)" % code):
            print(self.log_text()[-4000:])


# ---- request bodies, written here independently of our code ----

def body_csv(q, label_size=0):
    rows = []
    for r in q:
        cols = ["0"] * label_size + [repr(float(v)) for v in r]
        rows.append(",".join(cols))
    return "\n".join(rows) + "\n"


def body_json(q, shape="features"):
    inst = []
    for r in q:
        vals = [float(v) for v in r]
        if shape == "features":
            inst.append({"features": vals})
        elif shape == "values":
            inst.append({"data": {"features": {"values": vals}}})
        else:  # sparse
            keys = [i for i, v in enumerate(vals) if v != 0.0]
            inst.append({"data": {"features": {"keys": keys, "shape": [len(vals)], "values": [vals[i] for i in keys]}}})
    return json.dumps({"instances": inst})


def body_jsonlines(q):
    return "".join(json.dumps({"features": [float(v) for v in r]}) + "\n" for r in q)


def body_recordio(q):
    """RecordIO-protobuf as the SageMaker SDK writes it, built with python3-protobuf's own encoder."""
    rec = record_pb2()
    out = bytearray()
    for r in q:
        m = rec.Record()
        m.features["values"].float32_tensor.values.extend([float(v) for v in r])
        payload = m.SerializeToString()
        out += (0xCED7230A).to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload
        out += b"\0" * ((4 - len(payload) % 4) % 4)
    return bytes(out)


def parse_recordio(data):
    """Read RecordIO-protobuf Records with python3-protobuf (the SDK's read_records, restated)."""
    rec = record_pb2()
    out, pos = [], 0
    while pos + 8 <= len(data):
        magic = int.from_bytes(data[pos:pos + 4], "little")
        if magic != 0xCED7230A:
            raise ValueError("bad magic at %d" % pos)
        n = int.from_bytes(data[pos + 4:pos + 8], "little") & ((1 << 29) - 1)
        m = rec.Record()
        m.ParseFromString(bytes(data[pos + 8:pos + 8 + n]))
        out.append(m)
        pos += 8 + n + (4 - n % 4) % 4
    if pos != len(data):
        raise ValueError("trailing bytes at %d" % pos)
    return out


_RECORD_PB2 = None


def record_pb2():
    """The aialgs.data schema (spec 4.1) built with python3-protobuf's descriptor API (no protoc)."""
    global _RECORD_PB2
    if _RECORD_PB2:
        return _RECORD_PB2
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    fdp = descriptor_pb2.FileDescriptorProto(name="knn_test_record.proto", package="aialgs.data", syntax="proto2")
    F = descriptor_pb2.FieldDescriptorProto

    def msg(name, fields, nested=()):
        m = fdp.message_type.add(name=name)
        for fname, num, ftype, label, tname, packed in fields:
            f = m.field.add(name=fname, number=num, type=ftype, label=label)
            if tname:
                f.type_name = tname
            if packed:
                f.options.packed = True
        for n in nested:
            m.nested_type.add().CopyFrom(n)
        return m

    R, O = F.LABEL_REPEATED, F.LABEL_OPTIONAL
    msg("Float32Tensor", [("values", 1, F.TYPE_FLOAT, R, None, True), ("keys", 2, F.TYPE_UINT64, R, None, True),
                          ("shape", 3, F.TYPE_UINT64, R, None, True)])
    msg("Float64Tensor", [("values", 1, F.TYPE_DOUBLE, R, None, True), ("keys", 2, F.TYPE_UINT64, R, None, True),
                          ("shape", 3, F.TYPE_UINT64, R, None, True)])
    msg("Int32Tensor", [("values", 1, F.TYPE_INT32, R, None, True), ("keys", 2, F.TYPE_UINT64, R, None, True),
                        ("shape", 3, F.TYPE_UINT64, R, None, True)])
    msg("Bytes", [("value", 1, F.TYPE_BYTES, R, None, False), ("content_type", 2, F.TYPE_STRING, O, None, False)])
    v = msg("Value", [("float32_tensor", 2, F.TYPE_MESSAGE, O, ".aialgs.data.Float32Tensor", False),
                      ("float64_tensor", 3, F.TYPE_MESSAGE, O, ".aialgs.data.Float64Tensor", False),
                      ("int32_tensor", 7, F.TYPE_MESSAGE, O, ".aialgs.data.Int32Tensor", False),
                      ("bytes", 9, F.TYPE_MESSAGE, O, ".aialgs.data.Bytes", False)])
    v.oneof_decl.add(name="value")
    for f in v.field:
        f.oneof_index = 0
    entry = []
    for name in ("FeaturesEntry", "LabelEntry"):
        e = descriptor_pb2.DescriptorProto(name=name)
        e.field.add(name="key", number=1, type=F.TYPE_STRING, label=O)
        e.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=O, type_name=".aialgs.data.Value")
        e.options.map_entry = True
        entry.append(e)
    msg("Record", [("features", 1, F.TYPE_MESSAGE, R, ".aialgs.data.Record.FeaturesEntry", False),
                   ("label", 2, F.TYPE_MESSAGE, R, ".aialgs.data.Record.LabelEntry", False),
                   ("uid", 3, F.TYPE_STRING, O, None, False), ("metadata", 4, F.TYPE_STRING, O, None, False),
                   ("configuration", 5, F.TYPE_STRING, O, None, False)], nested=entry)
    pool = descriptor_pool.DescriptorPool()
    fd = pool.Add(fdp)

    class NS:
        pass
    ns = NS()
    for name in ("Record", "Float32Tensor"):
        d = pool.FindMessageTypeByName("aialgs.data." + name)
        if hasattr(message_factory, "GetMessageClass"):
            setattr(ns, name, message_factory.GetMessageClass(d))
        else:
            setattr(ns, name, message_factory.MessageFactory(pool).GetPrototype(d))
    _RECORD_PB2 = ns
    return ns
