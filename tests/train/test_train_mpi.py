"""Training jobs on several Open MPI ranks against the local S3 server (Ceph RGW):

    test_train_mpi.py CASE      (CASE: one of the functions named case_*)

`mpirun -np N --oversubscribe knn-runner train --manifest job.json` on one machine (shared memory
and loopback), as root the way CI runs it. Expected values come from the data the test wrote
(which rank owns which object), a numpy brute-force k-NN, FAISS reading the model, and the same
job run as a single host.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

import trainlib as t
from test_train_s3 import Ctx

HPS = {"feature_dim": 8, "k": 5, "sample_size": 100000, "predictor_type": "classifier"}
MPIRUN = os.environ.get("KNN_MPIEXEC", "/usr/bin/mpirun")
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           # one machine: no search for network interfaces, loopback only
           "OMPI_MCA_btl_tcp_if_include": "lo", "OMPI_MCA_oob_tcp_if_include": "lo"}
HOST_LINE = re.compile(r"^(algo-\d+) \| \[", re.M)


def mpi_job(ctx, name, m, ranks, extra_args=(), timeout=120):
    if not shutil.which(MPIRUN):
        print("SKIP: no mpirun", file=sys.stderr)
        sys.exit(t.SKIP)
    path = os.path.join(ctx.tmp, name + ".json")
    t.write_json(path, m)
    env = dict(os.environ)
    env.update(ctx.s3.run_env())
    env.update(MPI_ENV)
    env.setdefault("KNN_LOG_LEVEL", "info")
    cmd = [MPIRUN, "-np", str(ranks), "--oversubscribe", t.RUNNER, "train", "--manifest", path, "--json",
           "--no-progress"] + list(extra_args)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return t.Result(p)


def _parts(ctx, n_objects, rows_each, seed, d=8, classes=3):
    """n_objects RecordIO objects part-00.pbr ... of rows_each rows; returns [(x, y), ...] in key order."""
    x, y = t.clusters(n_objects * rows_each, d, classes, seed=seed)
    parts = []
    for i in range(n_objects):
        px, py = x[i * rows_each:(i + 1) * rows_each], y[i * rows_each:(i + 1) * rows_each]
        ctx.stage("train/part-%02d.pbr" % i, t.recordio_bytes(px, py))
        parts.append((px, py))
    return parts


def _owner_of_rows(parts, ranks, sharded):
    """vector bytes -> set of ranks that read it."""
    owner = {}
    for i, (px, _) in enumerate(parts):
        for row in px:
            owner.setdefault(row.tobytes(), set()).update({i % ranks} if sharded else set(range(ranks)))
    return owner


def _check_hosts(s, ranks, parts, sample_size, sharded):
    t.check(s["World"] == {"Engine": "Open MPI", "Size": ranks}, "World %s" % s.get("World"))
    t.check(s["InstanceCount"] == ranks, "InstanceCount %s" % s["InstanceCount"])
    hosts = s["Hosts"]
    t.check([h["Host"] for h in hosts] == ["algo-%d" % (r + 1) for r in range(ranks)], "Hosts %s" % hosts)
    t.check([h["Rank"] for h in hosts] == list(range(ranks)), "Hosts %s" % hosts)
    t.check(len(set(h["Pid"] for h in hosts)) == ranks, "one process per rank: %s" % hosts)
    for r, h in enumerate(hosts):
        mine = [p for i, p in enumerate(parts) if not sharded or i % ranks == r]
        rows = sum(len(px) for px, _ in mine)
        share = sample_size // ranks + (1 if r < sample_size % ranks else 0)
        t.check(h["Objects"] == len(mine) and h["Rows"] == rows, "%s: expected %d objects, %d rows" % (h, len(mine), rows))
        t.check(h["RowsSampled"] == min(rows, share), "%s: expected %d sampled" % (h, min(rows, share)))
        t.check(h["PeakMemoryBytes"] > 0 and h["Seconds"]["sample"] >= 0 and h["Seconds"]["gather"] >= 0, "%s" % h)
        t.check(h["Bytes"] == sum(len(t.recordio_bytes(px, py)) for px, py in mine), "%s: bytes" % h)
    t.check(s["RowsSampled"] == sum(h["RowsSampled"] for h in hosts), "RowsSampled %s" % s["RowsSampled"])
    t.check(s["Channels"]["train"]["rows"] == sum(h["Rows"] for h in hosts), "train rows %s" % s["Channels"])


def _check_model_rows(ctx, name, parts, ranks, sharded, hosts):
    """Every indexed vector is a training row of a rank that read it, with its label; per rank as many
    as that rank sampled."""
    index, labels, meta = t.faiss_model(ctx.model(name))
    vecs = index.reconstruct_n(0, index.ntotal)
    owner = _owner_of_rows(parts, ranks, sharded)
    label_of = {}
    for px, py in parts:
        for row, lab in zip(px, py):
            label_of[row.tobytes()] = lab
    # In gather order: algo-1's sample first, then algo-2's, ...
    at = 0
    for r, h in enumerate(hosts):
        for v, lab in zip(vecs[at:at + h["RowsSampled"]], labels[at:at + h["RowsSampled"]]):
            key = v.astype(np.float32).tobytes()
            t.check(key in owner, "an indexed vector is not a training row")
            t.check(r in owner[key], "a vector of algo-%d comes from an object it does not read" % (r + 1))
            t.check(label_of[key] == lab, "label %s of a vector, expected %s" % (lab, label_of[key]))
        at += h["RowsSampled"]
    t.check(at == index.ntotal, "ntotal %d, hosts sampled %d" % (index.ntotal, at))
    return index, labels, meta


def _host_lines(r, ranks):
    found = set(HOST_LINE.findall(r.err))
    t.check(found == {"algo-%d" % (i + 1) for i in range(ranks)}, "log lines name hosts %s\n%s" % (found, r.err[-3000:]))


def _sampled_case(ctx, ranks, sharded, sample_size, n_objects=7, rows_each=60):
    parts = _parts(ctx, n_objects, rows_each, seed=20 + ranks)
    ctx.upload()
    hps = dict(HPS, sample_size=sample_size)
    dist = "ShardedByS3Key" if sharded else "FullyReplicated"
    name = "mpi-%d-%s-%d" % (ranks, dist.lower(), sample_size)
    m = t.manifest(name, hps, ctx.uri("train/"), ctx.uri("out"), instances=ranks, train_distribution=dist)
    r = mpi_job(ctx, name, m, ranks)
    t.check(r.rc == 0, r.show())
    s = r.summary()
    _check_hosts(s, ranks, parts, sample_size, sharded)
    _check_model_rows(ctx, name, parts, ranks, sharded, s["Hosts"])
    _host_lines(r, ranks)
    t.check(s["ModelArtifacts"] == ctx.uri("out/%s/output/model.tar.gz" % name), "artifact %s" % s)
    # One model and one summary: only algo-1 wrote.
    t.check(ctx.s3.keys(ctx.prefix + "out/") == sorted([ctx.key("out/%s/output/job-summary.json" % name),
                                                          ctx.key("out/%s/output/model.tar.gz" % name)]),
            "output keys %s" % ctx.s3.keys(ctx.prefix + "out/"))


def case_sharded_2_below(ctx):
    """2 ranks, ShardedByS3Key, sample_size below the data: rank r reads objects r, r+2, ... and samples
    sample_size / 2 of its own rows."""
    _sampled_case(ctx, 2, True, 101)


def case_sharded_3_above(ctx):
    """3 ranks, ShardedByS3Key, sample_size above the data: every row of every rank's objects."""
    _sampled_case(ctx, 3, True, 5000)


def case_replicated_3_below(ctx):
    """3 ranks, FullyReplicated: each rank reads everything and samples its share (34, 33, 33)."""
    _sampled_case(ctx, 3, False, 100)


def case_replicated_2_above(ctx):
    _sampled_case(ctx, 2, False, 100000, n_objects=3)


def case_flat_equals_single_host(ctx):
    """Flat, sample_size >= the data: 2 and 3 ranks hold exactly the vectors and labels of a
    single-host model, and print the same test score (= numpy brute force)."""
    parts = _parts(ctx, 5, 80, seed=31)
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    tx, ty = t.clusters(150, 8, 3, seed=32)
    # Four test objects: with 2 and 3 ranks each rank scores its share (object i on rank i mod N).
    for i in range(4):
        ctx.stage("test/test-%d.pbr" % i, t.recordio_bytes(tx[i * 40:(i + 1) * 40], ty[i * 40:(i + 1) * 40]))
    ctx.upload()
    want = t.expected_score(x, y, tx, ty, 5, "L2", "classifier")
    m = t.manifest("single", HPS, ctx.uri("train/"), ctx.uri("out"), test_uri=ctx.uri("test/"))
    single = ctx.job("single", m)
    t.check(single.rc == 0, single.show())
    t.check(single.test_score() == want, "single host: %s, expected %s" % (single.test_score(), want))
    for ranks in (2, 3):
        name = "flat-%d" % ranks
        m = t.manifest(name, HPS, ctx.uri("train/"), ctx.uri("out"), test_uri=ctx.uri("test/"), instances=ranks,
                       train_distribution="ShardedByS3Key")
        r = mpi_job(ctx, name, m, ranks)
        t.check(r.rc == 0, r.show())
        t.check(r.test_score() == single.test_score(), "%d ranks: %s, single host %s" % (ranks, r.test_score(),
                                                                                          single.test_score()))
        t.check(r.summary()["FinalMetrics"] == single.summary()["FinalMetrics"], "FinalMetrics differ")
        t.check(r.summary()["Channels"]["test"] == single.summary()["Channels"]["test"],
                "test channel %s, single host %s" % (r.summary()["Channels"]["test"], single.summary()["Channels"]["test"]))
        t.check(r.summary()["Channels"]["test"]["rows"] == 150, "%s" % r.summary()["Channels"])
    base_index, base_labels, _ = t.faiss_model(ctx.model("single"))
    base = sorted(zip(map(bytes, base_index.reconstruct_n(0, base_index.ntotal).astype(np.float32)), base_labels))
    t.check(len(base) == len(x), "single host ntotal %d" % len(base))
    for ranks in (2, 3):
        index, labels, _ = t.faiss_model(ctx.model("flat-%d" % ranks))
        got = sorted(zip(map(bytes, index.reconstruct_n(0, index.ntotal).astype(np.float32)), labels))
        t.check(got == base, "%d ranks: the model's vectors and labels differ from the single host's" % ranks)


def case_corrupt_object_on_one_rank(ctx):
    """A corrupt record in an object of algo-2: the job fails on every rank, the reason names algo-2,
    the object and the record; nothing at the output path, no multipart upload left."""
    parts = _parts(ctx, 4, 50, seed=41)
    good = t.recordio_bytes(*parts[3])
    record = len(good) // 50
    bad = bytearray(good)
    bad[17 * record] ^= 0xFF  # record 17's magic
    ctx.stage("train/part-03.pbr", bytes(bad))
    ctx.upload()
    m = t.manifest("corrupt", HPS, ctx.uri("train/"), ctx.uri("out"), instances=2, train_distribution="ShardedByS3Key")
    t0 = time.monotonic()
    r = mpi_job(ctx, "corrupt", m, 2)
    t.check(r.rc != 0, r.show())
    want = "algo-2: %s: record 17 at offset %d" % (ctx.uri("train/part-03.pbr"), 17 * record)
    reason = r.summary()["FailureReason"]
    t.check(reason.startswith("ClientError: " + want), "reason %r, expected %r" % (reason, want))
    # Both ranks report the same reason in their own log lines.
    for host in ("algo-1", "algo-2"):
        t.check(re.search(r"^%s \| .*ERROR.*\] ClientError: %s" % (host, re.escape(want)), r.err, re.M),
                "%s does not report the failure\n%s" % (host, r.err[-3000:]))
    t.check(time.monotonic() - t0 < 60, "the failed job took %.1f s" % (time.monotonic() - t0))
    ctx.nothing_left("corrupt object")


def case_instance_count_mismatch(ctx):
    """InstanceCount 3 under mpirun -np 2: a ClientError naming both, before any data is read."""
    _parts(ctx, 2, 20, seed=43)
    ctx.upload()
    m = t.manifest("mismatch", HPS, ctx.uri("train/"), ctx.uri("out"), instances=3)
    r = mpi_job(ctx, "mismatch", m, 2)
    t.check(r.rc != 0, r.show())
    reason = r.summary()["FailureReason"]
    t.check(reason.startswith("ClientError: algo-1: ResourceConfig.InstanceCount is 3 but mpirun started 2 rank(s)"), reason)
    t.check("Channels" not in r.summary() or r.summary()["Channels"] == {}, "data was listed: %s" % r.summary())
    ctx.nothing_left("instance count mismatch")


def case_rank_killed(ctx):
    """SIGKILL to algo-2 while the job runs: mpirun ends the job in bounded time, non-zero, nothing
    written. algo-2 is killed once it has said who it is (its pid), before its sample reached algo-1."""
    if not shutil.which(MPIRUN):
        sys.exit(t.SKIP)
    _parts(ctx, 4, 2000, seed=47)
    ctx.upload()
    m = t.manifest("killed", HPS, ctx.uri("train/"), ctx.uri("out"), instances=2, train_distribution="ShardedByS3Key")
    path = os.path.join(ctx.tmp, "killed.json")
    t.write_json(path, m)
    env = dict(os.environ)
    env.update(ctx.s3.run_env())
    env.update(MPI_ENV)
    env["KNN_LOG_LEVEL"] = "info"
    p = subprocess.Popen([MPIRUN, "-np", "2", "--oversubscribe", t.RUNNER, "train", "--manifest", path,
                          "--no-progress"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    pid_line = re.compile(r"algo-2 \| [^|]*Rank 1 of 2 [^|]*, pid (\d+),")
    killed = None
    lines = []
    t0 = time.monotonic()
    try:
        for line in p.stderr:
            lines.append(line)
            found = pid_line.search(line)
            if found and killed is None:
                killed = int(found.group(1))
                os.kill(killed, signal.SIGKILL)
                t_kill = time.monotonic()
                break
            if time.monotonic() - t0 > 60:
                break
        t.check(killed is not None, "algo-2 never said its pid:\n" + "".join(lines[-50:]))
        rest = p.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        t.fail("mpirun did not end within 60 s of the kill")
    elapsed = time.monotonic() - t_kill
    t.check(p.returncode != 0, "mpirun exited %d after a rank was killed\n%s" % (p.returncode, rest[-3000:]))
    t.check(elapsed < 60, "the job ended %.1f s after the kill" % elapsed)
    ctx.nothing_left("rank killed")


def _container(root, host, hosts, x, y, test=None):
    """One host's /opt/ml: its resourceconfig, and the train shard the platform gave it."""
    base = os.path.join(root, host)
    for d in ["input/config", "input/data/train"]:
        os.makedirs(os.path.join(base, d), exist_ok=True)
    t.write_json(os.path.join(base, "input/config/hyperparameters.json"), {k: str(v) for k, v in HPS.items()})
    channels = {"train": {"TrainingInputMode": "File", "S3DistributionType": "ShardedByS3Key"}}
    if test is not None:
        channels["test"] = {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}
        os.makedirs(os.path.join(base, "input/data/test"), exist_ok=True)
        with open(os.path.join(base, "input/data/test/test.pbr"), "wb") as f:
            f.write(t.recordio_bytes(*test))
    t.write_json(os.path.join(base, "input/config/inputdataconfig.json"), channels)
    t.write_json(os.path.join(base, "input/config/resourceconfig.json"),
                 {"current_host": host, "hosts": hosts, "network_interface_name": "eth0"})
    with open(os.path.join(base, "input/data/train/shard.pbr"), "wb") as f:
        f.write(t.recordio_bytes(x, y))
    return base


def _run_containers(bases, timeout=120):
    """mpirun started on the first host, rank r in the container of bases[r] (one machine here: one
    app context per container, each with its own SAGEMAKER_BASE_DIR)."""
    env = dict(os.environ)
    env.update(MPI_ENV)
    env.update({"TRAINING_JOB_NAME": "container-mpi", "KNN_LOG_LEVEL": "info"})
    cmd = [MPIRUN, "--oversubscribe"]
    for i, b in enumerate(bases):
        cmd += ([":"] if i else []) + ["-np", "1", "/usr/bin/env", "SAGEMAKER_BASE_DIR=" + b, t.RUNNER, "train",
                                      "--json", "--no-progress"]
    return t.Result(subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout))


def case_container_two_hosts(tmp):
    """resourceconfig.json with hosts [algo-1, algo-2]: the /opt/ml contract on two ranks. Each host's
    input/data holds the shard the platform gave it (read whole: no second split); algo-1 writes the
    model of both shards into its model/, algo-2 writes none. Without mpirun the job says how to start
    the ranks; a rank in the wrong host's container is refused."""
    x, y = t.clusters(300, 8, 3, seed=51)
    tx, ty = t.clusters(90, 8, 3, seed=52)
    hosts = ["algo-1", "algo-2"]
    b1 = _container(tmp, "algo-1", hosts, x[:170], y[:170], test=(tx, ty))
    b2 = _container(tmp, "algo-2", hosts, x[170:], y[170:], test=(tx, ty))
    r = _run_containers([b1, b2])
    t.check(r.rc == 0, r.show())
    t.check(r.test_score() == t.expected_score(x, y, tx, ty, 5, "L2", "classifier"), r.err[-3000:])
    t.check(sorted(os.listdir(os.path.join(b1, "model"))) == t.MODEL_FILES, "algo-1 model/")
    t.check(not os.path.exists(os.path.join(b2, "model")) or os.listdir(os.path.join(b2, "model")) == [],
            "algo-2 wrote a model")
    files = {n: open(os.path.join(b1, "model", n), "rb").read() for n in t.MODEL_FILES}
    index, labels, _ = t.faiss_model(files)
    got = sorted(map(bytes, index.reconstruct_n(0, index.ntotal).astype(np.float32)))
    t.check(got == sorted(map(bytes, x)), "the model does not hold exactly both shards' rows")
    s = json.load(open(os.path.join(b1, "output/data/job-summary.json")))
    t.check(s["World"] == {"Engine": "Open MPI", "Size": 2}, "%s" % s.get("World"))
    t.check([(h["Host"], h["Rows"]) for h in s["Hosts"]] == [("algo-1", 170), ("algo-2", 130)], "%s" % s["Hosts"])

    # Without mpirun: what to do instead, with the failure file.
    env = {"SAGEMAKER_BASE_DIR": b1, "TRAINING_JOB_NAME": "container-mpi"}
    shutil.rmtree(os.path.join(b1, "model"))
    r = t.run_train(["--no-progress"], env=env)
    t.check(r.rc == 1, r.show())
    failure = open(os.path.join(b1, "output/failure")).read()
    t.check(failure.startswith("ClientError: resourceconfig.json lists 2 hosts (algo-1, ...): run them as one Open "
                               "MPI world, started on algo-1: mpirun -np 2 --hostfile"), failure)
    os.unlink(os.path.join(b1, "output/failure"))
    # Rank 1 in algo-1's container: refused, naming the rank and both hosts.
    r = _run_containers([b1, b1])
    t.check(r.rc != 0, r.show())
    t.check("ClientError: algo-2: rank 1 runs in the container of algo-1, but resourceconfig.json's hosts[1] is "
            "algo-2" in r.err, r.err[-3000:])
    t.check(not os.path.exists(os.path.join(b1, "model")) or os.listdir(os.path.join(b1, "model")) == [],
            "a model after the failure")


LOCAL_CASES = {"container_two_hosts"}


def main():
    if len(sys.argv) != 2 or not hasattr(sys.modules[__name__], "case_" + sys.argv[1]):
        t.fail("usage: test_train_mpi.py CASE")
    if not shutil.which(MPIRUN):
        print("SKIP: no mpirun", file=sys.stderr)
        sys.exit(t.SKIP)
    if sys.argv[1] in LOCAL_CASES:
        import tempfile
        tmp = tempfile.mkdtemp(prefix="knn-train-mpi-")
        try:
            getattr(sys.modules[__name__], "case_" + sys.argv[1])(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print("ok")
        return
    ctx = Ctx("mpi-" + sys.argv[1])
    try:
        getattr(sys.modules[__name__], "case_" + sys.argv[1])(ctx)
    finally:
        shutil.rmtree(ctx.tmp, ignore_errors=True)
        ctx.s3.close()
    print("ok")


if __name__ == "__main__":
    main()
