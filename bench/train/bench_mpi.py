#!/usr/bin/python3
"""bench/train/bench_mpi.py: training on 1 and 2 Open MPI ranks, side by side in one run.

Two measurements:

  read    many RecordIO objects in S3 (RGW), a small sample (reading is the bottleneck), the same
          job on 1 rank (a plain run) and on 2 ranks (`mpirun -np 2`, ShardedByS3Key), interleaved
          over --reps: rows read per second of the whole job, and the ratio 2 ranks / 1 rank;
  gather  sample_size 1M x 128 (512 MiB of float32) from local files (file://, so that only the
          gather differs from a single host), 2 ranks, faiss.Flat (the cheapest build: the worst
          case for the gather's share): the gather's seconds on algo-1 (Hosts[0].Seconds.gather),
          its share of the job's time, and the sampling and build phases beside it.

    bench_mpi.py --runner build/runner/knn-runner --env /tmp/knn-s3-local-$UID/env
    bench_mpi.py --runner ... --env ... --only gather
    bench_mpi.py --runner ... --env ... --read-rows 400000 --read-objects 64 --reps 2

Figures from a loaded, shared machine mean something only as ratios of runs made side by side.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_train import frame_layout, load_env, write_object  # noqa: E402

MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_btl_tcp_if_include": "lo", "OMPI_MCA_oob_tcp_if_include": "lo"}


def manifest(name, train_uri, out_uri, dim, sample, ranks, endpoint=None, index="faiss.Flat"):
    m = {
        "TrainingJobName": name,
        "HyperParameters": {"feature_dim": str(dim), "k": "10", "sample_size": str(sample),
                            "predictor_type": "classifier", "index_type": index},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": train_uri, "S3DataDistributionType": "ShardedByS3Key"}}}],
        "OutputDataConfig": {"S3OutputPath": out_uri},
        "ResourceConfig": {"InstanceCount": ranks},
    }
    if endpoint:
        m["EndpointUrl"] = endpoint
    return m


def run_job(runner, mpath, ranks, env):
    cmd = [runner, "train", "--manifest", mpath, "--json", "--no-progress"]
    if ranks > 1:
        cmd = ["/usr/bin/mpirun", "-np", str(ranks), "--oversubscribe"] + cmd
    e = dict(env)
    e.update(MPI_ENV)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=e, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), p.stderr[-4000:]))
    return dt, json.loads(p.stdout)


def bench_read(a, env, s3env, work):
    bucket = s3env.get("KNN_S3_BUCKET", "knn-test")
    run_id = "%d" % int(time.time())
    train = "s3://%s/bench-mpi/%s/train/" % (bucket, run_id)
    _, _, frame_len = frame_layout(a.dim)
    print("read: %d x %d rows (%.0f MiB) in %d objects -> %s" % (
        a.read_rows, a.dim, a.read_rows * frame_len / 2**20, a.read_objects, train), flush=True)
    centers = np.random.default_rng(7).normal(0, 4, size=(100, a.dim))
    local = os.path.join(work, "read")
    os.makedirs(local, exist_ok=True)
    per = [a.read_rows // a.read_objects + (1 if i < a.read_rows % a.read_objects else 0)
           for i in range(a.read_objects)]
    for i, rows in enumerate(per):
        write_object(os.path.join(local, "part-%03d.pbr" % i), rows, a.dim, centers, seed=100 + i)
    for i in range(a.read_objects):
        path = os.path.join(local, "part-%03d.pbr" % i)
        subprocess.run([a.runner, "s3", "cp", path, train + os.path.basename(path)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
    shutil.rmtree(local)
    results = {1: [], 2: []}
    for rep in range(a.reps):
        for ranks in (1, 2):
            name = "bench-mpi-%s-r%d-%d" % (run_id, ranks, rep)
            mpath = os.path.join(work, name + ".json")
            with open(mpath, "w") as f:
                json.dump(manifest(name, train, "s3://%s/bench-mpi/%s/out" % (bucket, run_id), a.dim, a.read_sample,
                                   ranks, s3env["AWS_ENDPOINT_URL"]), f)
            dt, s = run_job(a.runner, mpath, ranks, env)
            rows = s["Channels"]["train"]["rows"]
            t = s["TimingsSeconds"]
            results[ranks].append(rows / dt)
            print("  %d rank(s): %7.2f s  %9.0f rows/s  (sample phase %.2f s on algo-1; hosts' sample s: %s)" % (
                ranks, dt, rows / dt, t["sample"],
                " ".join("%.2f" % h["Seconds"]["sample"] for h in s["Hosts"])), flush=True)
    best1, best2 = max(results[1]), max(results[2])
    print("read: best of %d: 1 rank %.0f rows/s, 2 ranks %.0f rows/s: %.2fx (target >= 1.6x when reading is "
          "the bottleneck)" % (a.reps, best1, best2, best2 / best1))


def bench_gather(a, env, work):
    rows = a.gather_sample
    objects = 8
    local = os.path.join(work, "gather")
    os.makedirs(local, exist_ok=True)
    _, _, frame_len = frame_layout(a.dim)
    print("gather: sample_size %d x %d (%.0f MiB of float32) from %d local objects (%.0f MiB), 2 ranks, faiss.Flat"
          % (rows, a.dim, rows * a.dim * 4 / 2**20, objects, rows * frame_len / 2**20), flush=True)
    centers = np.random.default_rng(7).normal(0, 4, size=(100, a.dim))
    for i in range(objects):
        write_object(os.path.join(local, "part-%03d.pbr" % i), rows // objects, a.dim, centers, seed=200 + i)
    out = os.path.join(work, "gather-out")
    for rep in range(a.reps):
        name = "bench-mpi-gather-%d" % rep
        mpath = os.path.join(work, name + ".json")
        with open(mpath, "w") as f:
            json.dump(manifest(name, "file://" + local, "file://" + out, a.dim, rows, 2), f)
        dt, s = run_job(a.runner, mpath, 2, env)
        g = s["Hosts"][0]["Seconds"]["gather"]
        t = s["TimingsSeconds"]
        print("  job %.2f s (algo-1: sample %.2f, build %.2f, save %.2f, upload %.2f); gather %.2f s = %.1f%% of the "
              "job (target < 10%%); %.0f MiB/s; peak algo-1 %.0f MiB, algo-2 %.0f MiB" % (
                  dt, t["sample"], t["build"], t["save"], t["upload"], g, 100 * g / dt,
                  rows * a.dim * 4 / 2**20 / g if g > 0 else 0,
                  s["Hosts"][0]["PeakMemoryBytes"] / 2**20, s["Hosts"][1]["PeakMemoryBytes"] / 2**20), flush=True)
        shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(local)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runner", default="build/runner/knn-runner")
    ap.add_argument("--env", help="env file of a running s3-local server (needed by 'read')")
    ap.add_argument("--only", choices=["read", "gather"])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--read-rows", type=int, default=400_000)
    ap.add_argument("--read-objects", type=int, default=64)
    ap.add_argument("--read-sample", type=int, default=10_000)
    ap.add_argument("--gather-sample", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--workdir")
    a = ap.parse_args()
    a.runner = os.path.abspath(a.runner)
    work = a.workdir or tempfile.mkdtemp(prefix="knn-bench-mpi-")
    env = dict(os.environ)
    try:
        if a.only in (None, "read"):
            if not a.env:
                sys.exit("read: --env FILE of a running s3-local server is needed")
            s3env = load_env(a.env)
            env.update(s3env)
            bench_read(a, env, s3env, work)
        if a.only in (None, "gather"):
            bench_gather(a, env, work)
    finally:
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
