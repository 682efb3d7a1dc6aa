#!/usr/bin/python3
"""Endpoint benchmark: knn-runner serve under wrk on loopback, side by side with the same search
run in-process (serve_bench inproc), on the anchor data sets of bench/anchor (faiss_anchor.py:
`gaussian` 200k x 128 with a Flat index, `topics` 50k x 20).

For each model: single-row and 100-row JSON requests (verbose JSON Lines answers, as in the seed
use case), with 2 and 64 connections; requests/s, rows/s and p50/p99 latency from wrk, each cell
repeated (--repeats) and the median reported. The in-process anchor runs knn_model_predict on the
same batches (1 or 100 rows) as the server runs them: one search thread per call, one caller per core
(serve_bench inproc ... 1 <cores>), interleaved with the served runs; each
ratio is served rows/s over the anchor measured just before it, and the median ratio is reported.
Ratios are what to read: the machine is shared and noisy.

    /usr/bin/python3 bench/serve/run.py --build-dir build-serve [--seconds 8] [--repeats 3]
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def wrk(url, conns, seconds, body, ctype, accept):
    env = dict(os.environ, KNN_WRK_BODY=body, KNN_WRK_CONTENT_TYPE=ctype, KNN_WRK_ACCEPT=accept)
    out = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ds" % seconds, "--latency", "--timeout", "30s",
                          "-s", os.path.join(HERE, "post.lua"), url], capture_output=True, text=True, env=env).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non200 = int(re.search(r"NON200 (\d+)", out).group(1))
    errors = re.search(r"Socket errors: (.*)", out)

    def pct(p):
        m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s)\b" % p, out)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    if non200 or errors:
        raise RuntimeError("wrk saw failures (%d non-200, %s):\n%s" % (non200, errors and errors.group(1), out))
    return rps, pct(50), pct(99)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--datasets", default="topics,gaussian")
    ap.add_argument("--serve-args", default="", help="extra arguments for knn-runner serve")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    sys.path.insert(0, os.path.join(ROOT, "bench", "anchor"))
    import faiss_anchor as fa  # the anchor's own data generator, so both sides see identical data
    import numpy as np

    runner = os.path.join(args.build_dir, "runner", "knn-runner")
    bench = os.path.join(args.build_dir, "bench", "serve", "serve_bench")
    results = []
    for name in args.datasets.split(","):
        fb, fq, _ = fa.ensure_dataset(name, fa.DATASETS[name], fa.DEFAULT_DATA, False)
        model = os.path.join(fa.DEFAULT_DATA, "serve-model-%s" % name)
        if not os.path.exists(os.path.join(model, "model_algo-1.json")):
            os.makedirs(model, exist_ok=True)
            log("[%s] building the Flat model" % name)
            subprocess.run([bench, "build", model, fb, "10"], check=True)
        q = np.load(fq)
        tmp = tempfile.mkdtemp(prefix="knn-bench-serve-")
        bodies = {}
        for rows in (1, 100):
            path = os.path.join(tmp, "body-%d.json" % rows)
            with open(path, "w") as f:
                json.dump({"instances": [{"features": [float(v) for v in r]} for r in q[:rows]]}, f)
            bodies[rows] = path

        logf = open(os.path.join(tmp, "serve.log"), "w+")
        env = dict(os.environ, KNN_LOG_LEVEL="info")  # as deployed: a summary line every 60 s
        srv = subprocess.Popen([runner, "serve", "--model", model, "--port", "0", "--host", "127.0.0.1"] +
                               args.serve_args.split(), stderr=logf, env=env)
        port = None
        for _ in range(600):
            logf.seek(0)
            m = re.search(r"ready on port (\d+)", logf.read())
            if m:
                port = int(m.group(1))
                break
            time.sleep(0.1)
        if port is None:
            srv.kill()
            raise RuntimeError("server not ready")
        url = "http://127.0.0.1:%d/invocations" % port
        try:
            # Interleaved: each repeat measures the in-process anchor, then every cell, so each
            # ratio compares runs a few seconds apart under the same load from the rest of the machine.
            cells = {(rows, conns): [] for rows in (1, 100) for conns in (2, 64)}
            inproc = {1: [], 100: []}
            for rep in range(args.repeats):
                for rows in (1, 100):
                    out = subprocess.run([bench, "inproc", model, fq, str(rows), str(args.seconds), "1",
                                          str(os.cpu_count())], capture_output=True, text=True, check=True).stdout
                    inproc[rows].append(float(re.search(r"rows_per_s=([\d.]+)", out).group(1)))
                for (rows, conns), runs in cells.items():
                    c = wrk(url, conns, args.seconds, bodies[rows], "application/json",
                            "application/jsonlines; verbose=true")
                    runs.append(c + (c[0] * rows / inproc[rows][-1],))
                log("[%s] repeat %d: in-process %.0f / %.0f rows/s (1 / 100 rows per call); %s" % (
                    name, rep + 1, inproc[1][-1], inproc[100][-1], ", ".join(
                        "%dx%d %.0f rows/s" % (r, cn, runs[-1][0] * r) for (r, cn), runs in cells.items())))
            for (rows, conns), runs in cells.items():
                inproc_rows = statistics.median(inproc[rows])
                rps = statistics.median(c[0] for c in runs)
                res = dict(dataset=name, rows=rows, conns=conns, rps=rps, rows_per_s=rps * rows,
                           p50_ms=statistics.median(c[1] for c in runs), p99_ms=statistics.median(c[2] for c in runs),
                           inproc_rows_per_s=inproc_rows, vs_inproc=statistics.median(c[3] for c in runs),
                           runs=[list(c) for c in runs])
                results.append(res)
                log("[%s] %3d rows x %2d conns: %8.1f req/s %9.0f rows/s p50 %7.2f ms p99 %7.2f ms (%.2f of in-process)"
                    % (name, rows, conns, rps, res["rows_per_s"], res["p50_ms"], res["p99_ms"], res["vs_inproc"]))
        finally:
            srv.send_signal(signal.SIGTERM)
            srv.wait(timeout=60)
    print("| model | rows/request | connections | requests/s | rows/s | p50 ms | p99 ms | in-process rows/s | served / in-process |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print("| %s | %d | %d | %.1f | %.0f | %.2f | %.2f | %.0f | %.2f |" % (
            "gaussian 200k x 128 Flat" if r["dataset"] == "gaussian" else "topics 50k x 20 Flat",
            r["rows"], r["conns"], r["rps"], r["rows_per_s"], r["p50_ms"], r["p99_ms"], r["inproc_rows_per_s"],
            r["vs_inproc"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
