#!/usr/bin/python3
"""bench/train: an end-to-end training job on >= 1 GiB of RecordIO-protobuf in the local S3 server,
`knn-runner train` side by side with the Python pipeline a user would otherwise script from Debian
packages (anchor_pipeline.py: awscli download, python3-protobuf decoding, numpy sampling, FAISS
build, tar.gz, awscli upload), in one run, interleaved, for each index type.

    bench_train.py --runner build/runner/knn-runner                    # 2M x 128 (1.04 GiB), Flat + IVFFlat
    bench_train.py --runner ... --rows 8000000 --no-anchor             # 4.2 GiB: memory does not grow with data
    bench_train.py --runner ... --env /tmp/knn-s3-local-$UID/env       # a server that already runs

Reports seconds, the speed-up (anchor / ours; target >= 3x), and knn-runner's peak memory (VmHWM,
from the job summary) against the target: sample bytes + 25% + 64 MiB.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "../.."))
MAGIC = 0xCED7230A


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def ld(tag, payload):
    return bytes([tag]) + varint(len(payload)) + payload


def frame_layout(dim):
    """The SDK's bytes of one dense float32 record with a label: (prefix, middle, frame length), the
    features going between prefix and middle, the label after middle, then zero padding."""
    floats = b"\0" * (4 * dim)
    tensor = ld(0x0A, floats)
    value = ld(0x12, tensor)
    entry = ld(0x0A, b"values") + ld(0x12, value)
    feat = ld(0x0A, entry)
    label = ld(0x12, ld(0x0A, b"values") + ld(0x12, ld(0x12, ld(0x0A, b"\0\0\0\0"))))
    payload_len = len(feat) + len(label)
    head = (MAGIC).to_bytes(4, "little") + payload_len.to_bytes(4, "little")
    prefix = head + feat[:len(feat) - 4 * dim]
    middle = label[:-4]
    frame_len = (8 + payload_len + 3) // 4 * 4
    return prefix, middle, frame_len


def write_object(path, rows, dim, centers, seed):
    """`rows` records of Gaussian clusters (labels 0..9 = cluster id mod 10), vectorized."""
    prefix, middle, frame_len = frame_layout(dim)
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        for start in range(0, rows, 100000):
            n = min(100000, rows - start)
            c = rng.integers(0, len(centers), size=n)
            x = (centers[c] + rng.normal(0, 1.0, size=(n, dim))).astype("<f4")
            y = (c % 10).astype("<f4")
            buf = np.zeros((n, frame_len), dtype=np.uint8)
            p = len(prefix)
            buf[:, :p] = np.frombuffer(prefix, dtype=np.uint8)
            buf[:, p:p + 4 * dim] = x.view(np.uint8).reshape(n, 4 * dim)
            q = p + 4 * dim
            buf[:, q:q + len(middle)] = np.frombuffer(middle, dtype=np.uint8)
            buf[:, q + len(middle):q + len(middle) + 4] = y.view(np.uint8).reshape(n, 4)
            f.write(buf.tobytes())
    return rows * frame_len


def load_env(path):
    env = {}
    for line in open(path):
        line = line.strip()
        if line.startswith("export "):
            line = line[7:]
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k] = v
    return env


def run_measured(cmd, env):
    """Run, return (seconds, peak RSS in bytes of the largest process of the run, stdout)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate()
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit("failed: %s\n%s\n%s" % (" ".join(cmd), out, err[-4000:]))
    return dt, out, err


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runner", default=os.path.join(ROOT, "build/runner/knn-runner"))
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--objects", type=int, default=8)
    ap.add_argument("--sample", type=int, default=200_000)
    ap.add_argument("--indexes", default="faiss.Flat,faiss.IVFFlat")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--no-anchor", action="store_true")
    ap.add_argument("--env", help="env file of a running s3-local server (default: start one)")
    ap.add_argument("--workdir", default=None, help="scratch space (default: a temporary directory)")
    a = ap.parse_args()

    work = a.workdir or tempfile.mkdtemp(prefix="knn-bench-train-")
    os.makedirs(work, exist_ok=True)
    started = None
    prefix, middle, frame_len = frame_layout(a.dim)
    data_bytes = a.rows * frame_len
    try:
        if a.env:
            env_file = a.env
        else:
            started = os.path.join(work, "s3-local")
            mem = max(3 << 30, int(data_bytes * 1.4) + (2 << 30))
            print("starting s3-local (memstore %.1f GiB) ..." % (mem / 2**30), flush=True)
            subprocess.run([os.path.join(ROOT, "scripts/s3-local"), "start", "--dir", started, "--mem", str(mem)],
                           check=True, stdout=subprocess.DEVNULL)
            env_file = os.path.join(started, "env")
        s3env = load_env(env_file)
        env = dict(os.environ)
        env.update(s3env)
        bucket = s3env.get("KNN_S3_BUCKET", "knn-test")
        run_id = "%d" % int(time.time())
        train = "s3://%s/bench-train/%s/train/" % (bucket, run_id)

        print("generating %d x %d rows (%.2f GiB of RecordIO-protobuf) in %d objects ..."
              % (a.rows, a.dim, data_bytes / 2**30, a.objects), flush=True)
        centers = np.random.default_rng(7).normal(0, 4, size=(1000, a.dim))
        local = os.path.join(work, "data")
        per = [a.rows // a.objects + (1 if i < a.rows % a.objects else 0) for i in range(a.objects)]
        for i, rows in enumerate(per):
            os.makedirs(local, exist_ok=True)
            path = os.path.join(local, "part-%03d.pbr" % i)
            write_object(path, rows, a.dim, centers, seed=100 + i)
            subprocess.run([a.runner, "s3", "cp", path, train + os.path.basename(path)], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            os.unlink(path)
        print("uploaded to %s" % train, flush=True)

        sample_bytes = a.sample * a.dim * 4
        mem_target = sample_bytes * 1.25 + (64 << 20)
        rows = []
        for rep in range(a.reps):
            for index in a.indexes.split(","):
                job = "bench-%s-%s-%d" % (run_id, index.split(".")[1].lower(), rep)
                manifest = {
                    "TrainingJobName": job,
                    "HyperParameters": {"feature_dim": str(a.dim), "k": "10", "sample_size": str(a.sample),
                                        "predictor_type": "classifier", "index_type": index},
                    "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
                        "S3DataType": "S3Prefix", "S3Uri": train}}}],
                    "OutputDataConfig": {"S3OutputPath": "s3://%s/bench-train/%s/out" % (bucket, run_id)},
                    "EndpointUrl": s3env["AWS_ENDPOINT_URL"],
                }
                mpath = os.path.join(work, job + ".json")
                with open(mpath, "w") as f:
                    json.dump(manifest, f)
                dt, out, _ = run_measured([a.runner, "train", "--manifest", mpath, "--json", "--no-progress"], env)
                summary = json.loads(out)
                peak = summary["PeakMemoryBytes"]
                timings = summary["TimingsSeconds"]
                print("knn-runner %-13s %7.2f s  peak %6.1f MiB (target %.1f MiB)  %s" % (
                    index, dt, peak / 2**20, mem_target / 2**20,
                    " ".join("%s %.2f" % (k, v) for k, v in timings.items() if k != "total")), flush=True)
                anchor_dt = None
                if not a.no_anchor:
                    aw = os.path.join(work, "anchor-" + job)
                    os.makedirs(aw)
                    cmd = ["/usr/bin/python3", os.path.join(HERE, "anchor_pipeline.py"), "--s3-env", env_file,
                           "--train", train, "--output",
                           "s3://%s/bench-train/%s/anchor/%s/model.tar.gz" % (bucket, run_id, job),
                           "--dim", str(a.dim), "--sample", str(a.sample), "--index", index, "--workdir", aw,
                           "--rows-hint", str(a.rows)]
                    anchor_dt, aout, _ = run_measured(cmd, env)
                    steps = json.loads(aout.strip().splitlines()[-1])
                    shutil.rmtree(aw, ignore_errors=True)
                    print("python     %-13s %7.2f s  %s  => knn-runner is %.1fx faster" % (
                        index, anchor_dt, " ".join("%s %.2f" % (k, v) for k, v in steps.items()
                                                     if k not in ("total", "rows")), anchor_dt / dt), flush=True)
                rows.append((index, dt, peak, anchor_dt))

        print()
        print("| index | knn-runner s | python s | speed-up | peak MiB | target MiB |")
        print("| --- | --- | --- | --- | --- | --- |")
        for index, dt, peak, anchor_dt in rows:
            print("| %s | %.2f | %s | %s | %.1f | %.1f |" % (
                index, dt, "%.2f" % anchor_dt if anchor_dt else "-",
                "%.1fx" % (anchor_dt / dt) if anchor_dt else "-", peak / 2**20, mem_target / 2**20))
        print("data: %d rows x %d, %.2f GiB in %d objects; sample_size %d (%.1f MiB)" % (
            a.rows, a.dim, data_bytes / 2**30, a.objects, a.sample, sample_bytes / 2**20))
    finally:
        if started:
            subprocess.run([os.path.join(ROOT, "scripts/s3-local"), "stop", "--dir", started],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
