"""Sharded serving: `mpirun -np 3 knn-runner serve` against one process on the same model.

- answers byte for byte equal to one process's, for 1,000 queries in every request format, every
  answer format with and without verbose=true, and single-row requests, on Flat, IVFFlat and
  IVFPQ models (each rank holds a third of the vectors);
- the start-up log and /execution-parameters say the world size and what each rank holds, and the
  ranks' vectors add up to the model's;
- memory: each rank's resident memory after load is about 1/3 of the index plus a fixed overhead;
- transform: `mpirun -np 2 knn-runner transform` writes the same output objects as one process;
- health: a rank killed with SIGKILL turns /ping and /invocations into 503 naming the rank within
  5 s (mpirun --enable-recovery keeps rank 0 running); SIGTERM to mpirun stops every rank (mpirun
  sends SIGKILL 1 s after SIGTERM: its exit status is not checked).

The reference is the one-process endpoint (tests/serve/test_serve_formats.py checks it against an
independent brute force); the request bodies are written by serve_harness.py, not by our code.
"""
import json
import os
import re
import shutil
import signal
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_harness import (Server, TempDir, body_csv, body_json, body_jsonlines, body_recordio, check, finish,
                           make_model)

NP = 3
MPIRUN = shutil.which("mpirun") or "/usr/bin/mpirun"
PREFIX = [MPIRUN, "-np", str(NP), "--oversubscribe", "--enable-recovery"]
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")

N, DIM, NQ = 3000, 16, 1000


def data(seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, DIM)) * 3.0
    x = centres[rng.integers(0, 12, N)] + rng.normal(size=(N, DIM))
    labels = rng.integers(0, 5, N).astype(np.float32)
    q = centres[rng.integers(0, 12, NQ)] + rng.normal(size=(NQ, DIM))
    return x.astype(np.float32), labels, q.astype(np.float32)


def rank_pids(mpirun_pid):
    """{rank: pid} of the processes mpirun started (its children carrying OMPI_COMM_WORLD_RANK)."""
    ranks = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != mpirun_pid:
                continue
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        for e in env:
            if e.startswith(b"OMPI_COMM_WORLD_RANK="):
                ranks[int(e.split(b"=", 1)[1])] = int(d)
    return ranks


def running(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def stop_sharded(s, what):
    """SIGTERM to mpirun: every rank ends within seconds (mpirun SIGKILLs a rank 1 s after its SIGTERM,
    so its exit status says "killed"; what matters is that nothing is left running)."""
    ranks = rank_pids(s.proc.pid)
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    try:
        s.proc.wait(timeout=20)
    except Exception:
        s.proc.kill()
        s.proc.wait()
    s.log.close()
    check(time.time() - t0 < 20, "%s: mpirun ended %.1f s after SIGTERM" % (what, time.time() - t0))
    left = list(ranks.values())
    while left and time.time() - t0 < 20:
        time.sleep(0.1)
        left = [p for p in left if running(p)]
    check(not left, "%s: ranks %r still running %.1f s after SIGTERM" % (what, left, time.time() - t0))


def compare_answers(one, sharded, q, what):
    bodies = [("text/csv", body_csv(q)), ("application/json", body_json(q)),
              ("application/jsonlines", body_jsonlines(q)), ("application/x-recordio-protobuf", body_recordio(q))]
    accepts = ["application/json", "application/jsonlines", "application/x-recordio-protobuf"]
    cases = [(ct, b, "application/json; verbose=true") for ct, b in bodies]
    cases += [("text/csv", bodies[0][1], a + v) for a in accepts for v in ("", "; verbose=true")]
    for ct, b, accept in cases:
        s1, h1, a1 = one.invoke(b, ct, accept)
        s3, h3, a3 = sharded.invoke(b, ct, accept)
        check(s1 == 200 and s3 == 200, "%s %s -> %s: status %d / %d sharded" % (what, ct, accept, s1, s3))
        check(h1.get("content-type") == h3.get("content-type"), "%s %s -> %s: content types" % (what, ct, accept))
        check(a1 == a3, "%s %s -> %s: %d rows: the sharded answer differs (%d vs %d bytes)"
              % (what, ct, accept, len(q), len(a3), len(a1)))
    # Single rows take the one-query search paths.
    for i in range(0, 40, 2):
        b = body_csv(q[i:i + 1])
        s1, _, a1 = one.invoke(b, "text/csv", "application/json; verbose=true")
        s3, _, a3 = sharded.invoke(b, "text/csv", "application/json; verbose=true")
        check(s1 == 200 and s3 == 200 and a1 == a3, "%s single row %d: the sharded answer differs" % (what, i))


def check_world(sharded, what):
    status, _, body = sharded.request("GET", "/execution-parameters")
    check(status == 200, "%s: /execution-parameters %d" % (what, status))
    p = json.loads(body)
    w = p.get("KnnRunnerWorld", {})
    check(p.get("BatchStrategy") == "MULTI_RECORD", "%s: SageMaker's keys stay" % what)
    check(w.get("Size") == NP and len(w.get("Ranks", [])) == NP, "%s: world size %r" % (what, w))
    held = [r["Vectors"] for r in w.get("Ranks", [])]
    check(sum(held) == N and w.get("Vectors") == N, "%s: the ranks hold %r, not %d vectors in all" % (what, held, N))
    # Each about a third (cuts are aligned: Flat to 256 rows, IVF to 8 entries of each list).
    check(all(abs(h - N / NP) <= 300 for h in held), "%s: uneven shares %r" % (what, held))
    check(all(r["Bytes"] > 0 for r in w.get("Ranks", [])), "%s: bytes per rank" % what)
    log = sharded.log_text()
    check(re.search(r"sharded over %d ranks" % NP, log) is not None, "%s: start-up log names the world" % what)
    for r in range(NP):
        check(re.search(r"algo-%d \(rank %d\) holds \d+ vectors, \d+ bytes" % (r + 1, r), log) is not None,
              "%s: start-up log says what rank %d holds" % (what, r))


def test_same_answers(tmp):
    x, labels, q = data(5)
    for index, nlist, pq_m in (("faiss.Flat", 0, 0), ("faiss.IVFFlat", 24, 0), ("faiss.IVFPQ", 24, 4)):
        model = make_model(os.path.join(tmp, index), x, labels, 10, index=index, nlist=nlist, pq_m=pq_m)
        own = os.path.join(tmp, index + ".sharded")
        os.makedirs(own)
        sharded = Server(model, own, prefix=PREFIX)
        try:
            with Server(model, tmp) as one:
                compare_answers(one, sharded, q, index)
                check_world(sharded, index)
        finally:
            stop_sharded(sharded, index)


def test_health(tmp):
    x, labels, q = data(6)
    model = make_model(os.path.join(tmp, "health"), x, labels, 5)
    # SIGTERM to mpirun: every rank stops.
    s = Server(model, tmp, prefix=PREFIX)
    check(s.healthy(), "sharded endpoint answers /ping")
    ranks = rank_pids(s.proc.pid)
    check(sorted(ranks) == list(range(NP)), "mpirun started ranks %r" % sorted(ranks))
    stop_sharded(s, "SIGTERM")

    # A rank killed outright: 503 naming it within 5 s, never a hang.
    s = Server(model, tmp, prefix=PREFIX)
    try:
        st, _, _ = s.invoke(body_csv(q[:3]), "text/csv")
        check(st == 200, "answers before the kill")
        ranks = rank_pids(s.proc.pid)
        os.kill(ranks[2], signal.SIGKILL)
        t0 = time.time()
        status = 200
        while time.time() - t0 < 8:
            status, _, body = s.request("GET", "/ping", timeout=5)
            if status != 200:
                break
            time.sleep(0.1)
        took = time.time() - t0
        check(status == 503 and took < 5.0, "/ping %d %.1f s after a rank was killed (want 503 within 5 s)"
              % (status, took))
        check(b"algo-3" in body, "the 503 names the lost rank: %r" % body[:200])
        t1 = time.time()
        st, _, body = s.invoke(body_csv(q[:3]), "text/csv")
        check(st == 503 and b"algo-3" in body and time.time() - t1 < 5, "/invocations after the loss: %d %r"
              % (st, body[:200]))
    finally:
        stop_sharded(s, "after a rank was lost")


def test_transform(tmp):
    """mpirun -np 2 knn-runner transform: the same output objects, byte for byte, as one process; a
    failing object is reported and fails the exit status as in one process."""
    import subprocess
    from serve_harness import RUNNER
    x, labels, q = data(7)
    model = make_model(os.path.join(tmp, "tmodel"), x, labels, 5)
    inp = os.path.join(tmp, "in")
    os.makedirs(os.path.join(inp, "sub"))
    for i in range(7):
        with open(os.path.join(inp, "sub" if i % 3 == 0 else "", "part-%d.csv" % i), "w") as f:
            f.write(body_csv(q[i * 100:(i + 1) * 100]))
    with open(os.path.join(inp, "zbad.csv"), "w") as f:
        f.write(body_csv(q[:3]) + "1,2,x\n")
    outs = {}
    for name, prefix in (("one", []), ("two", [MPIRUN, "-np", "2", "--oversubscribe"])):
        out = os.path.join(tmp, "out-" + name)
        p = subprocess.run(prefix + [RUNNER, "transform", "--model", model, "--input", inp, "--output", out,
                                     "--content-type", "text/csv", "--accept", "application/jsonlines; verbose=true"],
                           capture_output=True, text=True, timeout=120)
        check(p.returncode != 0, "transform %s: a failed object fails the exit status (got %d)" % (name, p.returncode))
        check("FAILED" in p.stderr and "zbad.csv" in p.stderr, "transform %s: the failed object is reported:\n%s"
              % (name, p.stderr[-2000:]))
        files = {}
        for root, _, names in os.walk(out):
            for n in names:
                with open(os.path.join(root, n), "rb") as f:
                    files[os.path.relpath(os.path.join(root, n), out)] = f.read()
        outs[name] = files
        if name == "two":
            check(re.search(r"algo-2 of 2 ranks", p.stderr) is not None, "transform two: rank 2 says its share")
    check(len(outs["one"]) == 7, "transform one: 7 outputs, got %r" % sorted(outs["one"]))
    check(sorted(outs["one"]) == sorted(outs["two"]), "transform: output names %r vs %r"
          % (sorted(outs["one"]), sorted(outs["two"])))
    check(all(outs["one"][k] == outs["two"].get(k) for k in outs["one"]), "transform: outputs differ with 2 ranks")


def rss_anon(pid):
    """Resident anonymous memory of a process, bytes (where the index lives; not the shared libraries
    or MPI's shared-memory segments)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def sharded_rss(model, tmp, name):
    own = os.path.join(tmp, name)
    os.makedirs(own)
    s = Server(model, own, prefix=PREFIX)
    try:
        time.sleep(0.5)
        ranks = rank_pids(s.proc.pid)
        rss = {r: rss_anon(p) for r, p in ranks.items()}
        _, _, body = s.request("GET", "/execution-parameters")
        held = [r["Bytes"] for r in json.loads(body)["KnnRunnerWorld"]["Ranks"]]
    finally:
        stop_sharded(s, name)
    return rss, held


def test_memory(tmp):
    """Each rank's resident memory after load is about 1/N of the index plus a fixed overhead: the
    overhead is measured the same way on a tiny model (same ranks, same MPI), the index's size is
    the model's vectors + norms + labels."""
    rng = np.random.default_rng(8)
    big_n, d = 150000, 32
    whole = big_n * (d * 4 + 4 + 4)  # vectors, L2 norms, labels
    small = make_model(os.path.join(tmp, "small"), rng.normal(size=(600, d)).astype(np.float32),
                       rng.integers(0, 3, 600).astype(np.float32), 5)
    big = make_model(os.path.join(tmp, "big"), rng.normal(size=(big_n, d)).astype(np.float32),
                     rng.integers(0, 3, big_n).astype(np.float32), 5)
    base, _ = sharded_rss(small, tmp, "rss-small")
    rss, held = sharded_rss(big, tmp, "rss-big")
    for r in range(NP):
        share = rss[r] - base[r]
        print("rank %d: %.1f MB resident (anonymous), %.1f MB more than with a tiny model; holds %.1f MB; "
              "the whole index is %.1f MB" % (r, rss[r] / 1e6, share / 1e6, held[r] / 1e6, whole / 1e6))
        # 1/N of the index, within 25% of it plus 4 MB of allocator and scratch slack.
        check(abs(share - whole / NP) <= 0.25 * whole / NP + (4 << 20),
              "rank %d: %.1f MB over the fixed overhead, expected about %.1f MB (1/%d of %.1f MB)"
              % (r, share / 1e6, whole / NP / 1e6, NP, whole / 1e6))
        check(abs(held[r] - whole / NP) <= 0.05 * whole / NP, "rank %d reports %d bytes held" % (r, held[r]))


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    with TempDir("sharded") as tmp:
        if which in ("all", "answers"):
            test_same_answers(tmp)
        if which in ("all", "health"):
            test_health(tmp)
        if which in ("all", "transform"):
            test_transform(tmp)
        if which in ("all", "memory"):
            test_memory(tmp)
    finish()


if __name__ == "__main__":
    main()
