"""Sharded serving side by side with one process (bench/serve/README.md, "Sharded serving").

Three endpoints on the same Flat model, one after the other on loopback:
  one    knn-runner serve                      (the anchor)
  np1    mpirun -np 1 knn-runner serve          (the sharded path with one rank: dispatcher hand-off,
                                                 merge and vote; its cost per request over `one`)
  np2    mpirun -np 2 knn-runner serve          (each rank holds half the vectors)
Each is driven by `--connections` keep-alive clients (Python threads, http.client) for `--seconds`
with 1-row and 100-row JSON requests asking for application/jsonlines; verbose=true, and the
per-rank resident anonymous memory is read from /proc after load. Figures from a loaded shared
machine mean something only as ratios to `one` measured in the same run.

  /usr/bin/python3 bench/serve/sharded.py --build-dir build [--rows 100000 --dim 64 --seconds 5]
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import numpy as np


def start(cmd, log_path):
    log = open(log_path, "w+b")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        with open(log_path, "rb") as f:
            m = re.search(rb"ready on port (\d+)", f.read())
        if m:
            return proc, log, int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("no endpoint: " + open(log_path, "rb").read().decode(errors="replace")[-2000:])


def stop(proc, log):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def rank_rss(mpirun_pid):
    """{rank: MB of resident anonymous memory} of mpirun's children, or of the process itself."""
    out = {}
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == mpirun_pid:
                        pids.append(int(d))
            except OSError:
                pass
    for pid in pids or [mpirun_pid]:
        rank = 0
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                for e in f.read().split(b"\0"):
                    if e.startswith(b"OMPI_COMM_WORLD_RANK="):
                        rank = int(e.split(b"=")[1])
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        out[rank] = int(line.split()[1]) / 1024.0
        except OSError:
            pass
    return out


def drive(port, body, rows, connections, seconds):
    lat = []
    lock = threading.Lock()
    stop_at = time.time() + seconds
    errors = [0]

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        while time.time() < stop_at:
            t0 = time.perf_counter()
            conn.request("POST", "/invocations", body, {"Content-Type": "application/json",
                                                        "Accept": "application/jsonlines; verbose=true"})
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                errors[0] += 1
            mine.append(time.perf_counter() - t0)
        conn.close()
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(connections)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.time() - t0
    lat.sort()
    return {"rows_per_s": len(lat) * rows / took, "p50_ms": 1000 * lat[len(lat) // 2],
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], "requests": len(lat), "errors": errors[0]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    runner = os.path.join(a.build_dir, "runner", "knn-runner")
    make_model = os.path.join(a.build_dir, "tests", "serve", "make_model")
    mpirun = shutil.which("mpirun") or "/usr/bin/mpirun"
    tmp = tempfile.mkdtemp(prefix="knn-bench-sharded-")
    try:
        rng = np.random.default_rng(1)
        x = rng.normal(size=(a.rows, a.dim)).astype("<f4")
        x.tofile(os.path.join(tmp, "x.f32"))
        np.arange(a.rows, dtype="<f4").tofile(os.path.join(tmp, "y.f32"))
        model = os.path.join(tmp, "model")
        os.makedirs(model)
        subprocess.run([make_model, model, os.path.join(tmp, "x.f32"), os.path.join(tmp, "y.f32"), str(a.dim), "10",
                        "regressor", "L2", "faiss.Flat"], check=True)
        q = rng.normal(size=(100, a.dim))
        bodies = {n: json.dumps({"instances": [{"features": [float(v) for v in r]} for r in q[:n]]}).encode()
                  for n in (1, 100)}
        serve = [runner, "serve", "--model", model, "--host", "127.0.0.1", "--port", "0"]
        configs = [("one", serve), ("np1", [mpirun, "-np", "1", "--oversubscribe", "--enable-recovery"] + serve),
                   ("np2", [mpirun, "-np", "2", "--oversubscribe", "--enable-recovery"] + serve)]
        results = {}
        for name, cmd in configs:
            proc, log, port = start(cmd, os.path.join(tmp, name + ".log"))
            try:
                time.sleep(0.5)
                res = {"rss_mb": rank_rss(proc.pid)}
                for n, body in bodies.items():
                    drive(port, body, n, a.connections, 1.0)  # warm-up
                    res["%d_rows" % n] = drive(port, body, n, a.connections, a.seconds)
                results[name] = res
            finally:
                stop(proc, log)
        index_mb = a.rows * (a.dim * 4 + 8) / 2 ** 20
        print("Flat L2, %d x %d (%.1f MiB of vectors, norms and labels), %d connections, %.0f s per cell"
              % (a.rows, a.dim, index_mb, a.connections, a.seconds))
        print("%-5s %-8s %12s %9s %9s %8s   %s" % ("", "request", "rows/s", "p50 ms", "p99 ms", "x one",
                                                   "resident anon MiB per rank"))
        for name, _ in configs:
            r = results[name]
            for n in (1, 100):
                c = r["%d_rows" % n]
                base = results["one"]["%d_rows" % n]["rows_per_s"]
                print("%-5s %-8s %12.0f %9.2f %9.2f %8.2f   %s" % (
                    name, "%d row%s" % (n, "s" if n > 1 else ""), c["rows_per_s"], c["p50_ms"], c["p99_ms"],
                    c["rows_per_s"] / base, " ".join("%d:%.1f" % kv for kv in sorted(r["rss_mb"].items()))))
        for n in (1, 100):
            extra = results["np1"]["%d_rows" % n]["p50_ms"] - results["one"]["%d_rows" % n]["p50_ms"]
            print("sharded path's cost per %d-row request (np1 - one, p50): %+.2f ms" % (n, extra))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(results, f, indent=1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
