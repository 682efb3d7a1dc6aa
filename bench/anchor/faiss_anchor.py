#!/usr/bin/python3
"""The FAISS side of our benchmarks: Debian's python3-faiss on the same data as our C benchmarks.

    /usr/bin/python3 bench/anchor/faiss_anchor.py [--datasets gaussian,topics] [--threads 1,2,2:1]
        [--only flat,ivfflat,ivfpq] [--flat-metrics l2,ip,cos] [--ivf-metrics l2,cos]
        [--nprobe 1,8,32] [--repeats 3] [--single 1000] [--single-budget 2] [--out faiss-anchor.json]
    /usr/bin/python3 bench/anchor/faiss_anchor.py --gen-only          # data + ground truth only
    /usr/bin/python3 bench/anchor/faiss_anchor.py --base B.npy --query Q.npy --name mine

Data sets, generated once from fixed seeds into --data-dir ($KNN_BENCH_DATA, default
~/.cache/knn-bench-data) as .npy files that our benchmarks read too:
  gaussian  200,000 base + 1,000 query vectors, d=128: 1,000 Gaussian clusters of unequal weight
            and spread, in a randomly rotated space whose variance decays along the dimensions;
  topics    50,000 + 1,000 vectors, d=20: Dirichlet topic mixtures (rows sum to 1), like the
            document-topic vectors of the content-recommendation use case.
Ground truth: <name>_gt_<metric>.npy, the exact top-100 (l2, ip, cos) computed in float64 with
numpy, not with FAISS, so that it also checks FAISS's own Flat answers.

Each (data set, index, metric, threads) cell runs in a fresh child process, with OMP_NUM_THREADS
and OPENBLAS_NUM_THREADS set before FAISS loads (a thread label "2:1" is 2 FAISS threads over a
single-threaded OpenBLAS). A cell reports train/add seconds, batch QPS (one search call with all
queries, best and median of --repeats), one-query-per-call QPS (--single queries or --single-budget
seconds, whichever ends first), recall@10 and the child's peak RSS. IVF uses nlist = round(sqrt(N));
IVFPQ uses 8-bit codes and m = 16 (d=128) or 5 (d=20).
"""
import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

DEFAULT_DATA = os.environ.get("KNN_BENCH_DATA", os.path.join(os.path.expanduser("~"), ".cache", "knn-bench-data"))
GEN_VERSION = 1  # bump when a generator changes: cached files are then rebuilt
GT_K = 100
GT_METHOD = "float64 numpy brute force, top-100"

DATASETS = {
    "gaussian": dict(kind="gaussian", n=200_000, nq=1_000, d=128, seed=20240501,
                     n_clusters=1000, sigma_lo=0.5, sigma_hi=1.0, spectrum_tau=16.0),
    "topics": dict(kind="topics", n=50_000, nq=1_000, d=20, seed=20240502, alpha_total=2.0),
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- data -------------------------------------------------------------------------------------

def _gaussian(p):
    rng = np.random.default_rng(p["seed"])
    d, nc = p["d"], p["n_clusters"]
    scale = 1.0 / np.sqrt(1.0 + np.arange(d) / p["spectrum_tau"])
    rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
    centers = (rng.standard_normal((nc, d)) * scale) @ rotation
    spread = rng.uniform(p["sigma_lo"], p["sigma_hi"], size=nc)
    weight = rng.dirichlet(np.full(nc, 2.0))

    def sample(count):
        out = np.empty((count, d), dtype=np.float32)
        cluster = rng.choice(nc, size=count, p=weight)
        for lo in range(0, count, 50_000):
            hi = min(count, lo + 50_000)
            noise = (rng.standard_normal((hi - lo, d)) * scale) @ rotation
            out[lo:hi] = centers[cluster[lo:hi]] + spread[cluster[lo:hi], None] * noise
        return out

    base = sample(p["n"])
    return base, sample(p["nq"])


def _topics(p):
    rng = np.random.default_rng(p["seed"])
    alpha = np.maximum(p["alpha_total"] * rng.dirichlet(np.ones(p["d"])), 1e-3)
    base = rng.dirichlet(alpha, size=p["n"]).astype(np.float32)
    return base, rng.dirichlet(alpha, size=p["nq"]).astype(np.float32)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _drop_ground_truth(name, data_dir):
    for f in os.listdir(data_dir):
        if f.startswith(f"{name}_gt_"):
            os.remove(os.path.join(data_dir, f))


def ensure_dataset(name, params, data_dir=DEFAULT_DATA, regen=False):
    """(base .npy path, query .npy path, manifest) of a built-in data set, generated if missing."""
    os.makedirs(data_dir, exist_ok=True)
    base = os.path.join(data_dir, f"{name}_base.npy")
    query = os.path.join(data_dir, f"{name}_query.npy")
    manifest_path = os.path.join(data_dir, f"{name}_manifest.json")
    want = dict(params, gen_version=GEN_VERSION, numpy=np.__version__)
    if not regen and all(os.path.exists(f) for f in (base, query, manifest_path)):
        with open(manifest_path) as f:
            manifest = json.load(f)
        if manifest.get("params") == want:
            return base, query, manifest
    log(f"[data] generating {name} into {data_dir}")
    xb, xq = _gaussian(params) if params["kind"] == "gaussian" else _topics(params)
    np.save(base, xb)
    np.save(query, xq)
    _drop_ground_truth(name, data_dir)
    manifest = dict(params=want, base=base, query=query, sha256_base=_sha256(base), sha256_query=_sha256(query))
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=1)
    return base, query, manifest


def external_dataset(name, base, query, data_dir=DEFAULT_DATA):
    """A user's own .npy pair; cached ground truth is dropped when their bytes change."""
    os.makedirs(data_dir, exist_ok=True)
    manifest = dict(params=dict(kind="external"), base=os.path.abspath(base), query=os.path.abspath(query),
                    sha256_base=_sha256(base), sha256_query=_sha256(query))
    manifest_path = os.path.join(data_dir, f"{name}_manifest.json")
    old = None
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            old = json.load(f)
    if not old or (old.get("sha256_base"), old.get("sha256_query")) != (manifest["sha256_base"], manifest["sha256_query"]):
        _drop_ground_truth(name, data_dir)
        with open(manifest_path, "w") as f:
            json.dump(manifest, f, indent=1)
    return manifest


def load_f32(path):
    x = np.load(path)
    if x.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D array, got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def normalized(x):
    norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    norms[norms == 0] = 1
    return (x / norms).astype(np.float32)


def ensure_ground_truth(name, manifest, data_dir=DEFAULT_DATA, metrics=("l2", "ip", "cos")):
    """Exact top-GT_K neighbours per metric, in float64 (ties broken by the smaller id)."""
    xb = xq = None
    for metric in metrics:
        path = os.path.join(data_dir, f"{name}_gt_{metric}.npy")
        stamp = os.path.join(data_dir, f"{name}_gt_{metric}.json")
        if os.path.exists(path) and os.path.exists(stamp):
            with open(stamp) as f:
                if json.load(f).get("method") == GT_METHOD:
                    continue
        if xb is None:
            xb, xq = load_f32(manifest["base"]), load_f32(manifest["query"])
        log(f"[gt] {name} {metric}")
        b, q = (normalized(xb), normalized(xq)) if metric == "cos" else (xb, xq)
        b64 = b.astype(np.float64)
        bnorm = (b64 * b64).sum(1)
        k = min(GT_K, b.shape[0])
        ids = np.empty((q.shape[0], k), dtype=np.int64)
        for lo in range(0, q.shape[0], 50):
            qq = q[lo:lo + 50].astype(np.float64)
            score = qq @ b64.T
            cost = bnorm[None, :] - 2 * score if metric == "l2" else -score  # smaller is nearer
            part = np.argpartition(cost, k - 1, axis=1)[:, :k] if k < b.shape[0] else \
                np.tile(np.arange(b.shape[0]), (qq.shape[0], 1))
            pc = np.take_along_axis(cost, part, 1)
            order = np.lexsort((part, pc), axis=1)
            ids[lo:lo + 50] = np.take_along_axis(part, order, 1)
        np.save(path, ids)
        with open(stamp, "w") as f:
            json.dump(dict(method=GT_METHOD, k=k), f)


def recall_at(found, truth, k=10):
    """|found top-k ∩ true top-k| / k, averaged over the queries."""
    return float(np.mean([len(np.intersect1d(a[:k], b[:k])) / k for a, b in zip(found, truth)]))


# ---- one cell, in a child process -------------------------------------------------------------

def _peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _pq_m(d):
    return 16 if d == 128 else 5 if d % 5 == 0 else max(m for m in range(1, min(d, 16) + 1) if d % m == 0)


def run_cell(spec):
    import faiss

    faiss.omp_set_num_threads(spec["threads"])
    xb, xq = load_f32(spec["base"]), load_f32(spec["query"])
    n, d = xb.shape
    k, metric, kind = spec["k"], spec["metric"], spec["index"]
    truth = np.load(os.path.join(spec["data_dir"], f"{spec['name']}_gt_{metric}.npy"))
    flat = faiss.IndexFlatL2 if metric == "l2" else faiss.IndexFlatIP
    faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    nlist = int(round(np.sqrt(n)))
    params = {}
    t0 = time.perf_counter()
    if metric == "cos":
        faiss.normalize_L2(xb)
    t_normalize = time.perf_counter() - t0
    if kind == "flat":
        index = flat(d)
        name = {"l2": "IndexFlatL2", "ip": "IndexFlatIP", "cos": "IndexFlatIP(cos)"}[metric]
    elif kind == "ivfflat":
        quantizer = flat(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss_metric)
        name, params = "IndexIVFFlat", dict(nlist=nlist)
    elif kind == "ivfpq":
        quantizer = flat(d)
        m = spec.get("m") or _pq_m(d)
        index = faiss.IndexIVFPQ(quantizer, d, nlist, m, 8, faiss_metric)
        name, params = "IndexIVFPQ", dict(nlist=nlist, m=m, nbits=8)
    else:
        raise ValueError(f"unknown index kind {kind}")
    t0 = time.perf_counter()
    if not index.is_trained:
        index.train(xb)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.add(xb)
    add_s = time.perf_counter() - t0 + t_normalize

    def queries():  # cosine: normalising the queries is part of the search
        q = xq.copy()
        if metric == "cos":
            faiss.normalize_L2(q)
        return q

    def measure():
        index.search(queries()[:16], k)  # warm-up
        times, found = [], None
        for _ in range(spec["repeats"]):
            t0 = time.perf_counter()
            _, found = index.search(queries(), k)
            times.append(time.perf_counter() - t0)
        q, done, t0 = queries(), 0, time.perf_counter()
        while done < min(spec["single"], q.shape[0]):
            index.search(q[done:done + 1], k)
            done += 1
            if done >= 10 and time.perf_counter() - t0 > spec["single_budget_s"]:
                break
        single_s = time.perf_counter() - t0
        nq = q.shape[0]
        return dict(search_s_best=min(times), search_s_median=float(np.median(times)), qps_best=nq / min(times),
                    qps_median=nq / float(np.median(times)), recall_at_10=recall_at(found, truth, 10),
                    single_qps=done / single_s, single_n=done)

    common = dict(dataset=spec["name"], N=n, d=d, nq=xq.shape[0], k=k, metric=metric, index=name,
                  threads=spec["threads"], blas_threads=spec["blas_threads"], thread_label=spec["thread_label"],
                  train_s=train_s, add_s=add_s)
    rows = []
    if kind == "flat":
        rows.append(dict(common, variant="default", params=params, **measure()))
    else:
        for nprobe in spec["nprobes"]:
            index.nprobe = nprobe
            faiss.cvar.indexIVF_stats.reset()
            r = measure()
            stats = faiss.cvar.indexIVF_stats
            rows.append(dict(common, variant=f"nprobe={nprobe}", params=dict(params, nprobe=nprobe),
                             ndis_per_query=stats.ndis / max(1, stats.nq), **r))
    peak = _peak_rss_mb()
    for r in rows:
        r["peak_rss_mb"] = peak
    return rows


def run_child(spec):
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), OPENBLAS_NUM_THREADS=str(spec["blas_threads"]))
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0:
        log(p.stderr[-3000:])
        raise RuntimeError(f"FAISS cell {spec['name']} {spec['index']} {spec['metric']} failed (exit {p.returncode})")
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"FAISS cell {spec['name']} {spec['index']}: no RESULT line")


# ---- parent -----------------------------------------------------------------------------------

def machine():
    info = dict(python=sys.version.split()[0], platform=platform.platform(), numpy=np.__version__)
    try:
        import faiss
        info["faiss"] = faiss.__version__
        info["faiss_compile_options"] = faiss.get_compile_options()
    except ImportError as e:
        info["faiss"] = f"unavailable: {e}"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            key, _, val = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "L2 cache", "L3 cache"):
                info["cpu_" + key.strip().lower().replace(" ", "_").replace("(s)", "s")] = val.strip()
    except OSError:
        pass
    return info


def table(rows):
    head = f"{'dataset':9} {'index':18} {'metric':6} {'variant':10} {'thr':>4} {'train s':>8} {'add s':>7} " \
           f"{'QPS best':>9} {'QPS med':>8} {'R@10':>6} {'1-by-1':>8} {'RSS MB':>7}"
    out = [head, "-" * len(head)]
    for r in rows:
        label = r["index"] + (f" m={r['params']['m']}" if "m" in r["params"] else "")
        out.append(f"{r['dataset']:9} {label:18} {r['metric']:6} {r['variant']:10} {r['thread_label']:>4} "
                   f"{r['train_s']:8.2f} {r['add_s']:7.3f} {r['qps_best']:9.0f} {r['qps_median']:8.0f} "
                   f"{r['recall_at_10']:6.3f} {r['single_qps']:8.0f} {r['peak_rss_mb']:7.0f}")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--datasets", default="gaussian,topics", help="built-in data sets ('' for none)")
    ap.add_argument("--base", help="your own base vectors, .npy float32 [N, d]")
    ap.add_argument("--query", help="your own query vectors, .npy float32 [nq, d]")
    ap.add_argument("--name", default="external", help="name of the --base/--query data set")
    ap.add_argument("--threads", default="1,2,2:1", help="FAISS[:OpenBLAS] thread counts")
    ap.add_argument("--flat-metrics", default="l2,ip,cos")
    ap.add_argument("--ivf-metrics", default="l2,cos")
    ap.add_argument("--nprobe", default="1,8,32")
    ap.add_argument("--only", default="", help="index kinds to run: flat,ivfflat,ivfpq (default all)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="batch searches per cell (best and median)")
    ap.add_argument("--single", type=int, default=1000, help="at most this many one-query searches")
    ap.add_argument("--single-budget", type=float, default=2.0, help="seconds for the one-query searches")
    ap.add_argument("--data-dir", default=DEFAULT_DATA)
    ap.add_argument("--regen", action="store_true", help="regenerate the data files")
    ap.add_argument("--gen-only", action="store_true", help="only make the data and ground truth")
    ap.add_argument("--out", default="faiss-anchor.json", help="results JSON")
    args = ap.parse_args()

    if args.child:
        print("RESULT " + json.dumps(run_cell(json.loads(args.child))), flush=True)
        return 0

    sets = []
    for name in filter(None, args.datasets.split(",")):
        if name not in DATASETS:
            ap.error(f"--datasets: unknown data set '{name}' (known: {', '.join(DATASETS)})")
        sets.append((name, ensure_dataset(name, DATASETS[name], args.data_dir, args.regen)[2]))
    if args.base or args.query:
        if not (args.base and args.query):
            ap.error("--base and --query go together")
        sets.append((args.name, external_dataset(args.name, args.base, args.query, args.data_dir)))
    for name, manifest in sets:
        ensure_ground_truth(name, manifest, args.data_dir)
    if args.gen_only:
        for name, manifest in sets:
            print(name, manifest["base"], manifest["query"])
        return 0

    threads = []
    for tok in filter(None, args.threads.split(",")):
        omp, _, blas = tok.partition(":")
        threads.append((int(omp), int(blas or omp), tok))
    only = set(filter(None, args.only.split(",")))
    nprobes = [int(x) for x in filter(None, args.nprobe.split(","))]
    t_start = time.perf_counter()
    rows = []
    for name, manifest in sets:
        cells = [dict(index="flat", metric=m) for m in filter(None, args.flat_metrics.split(","))]
        for m in filter(None, args.ivf_metrics.split(",")):
            cells += [dict(index="ivfflat", metric=m), dict(index="ivfpq", metric=m)]
        for cell in (c for c in cells if not only or c["index"] in only):
            for omp, blas, label in threads:
                spec = dict(cell, name=name, base=manifest["base"], query=manifest["query"], data_dir=args.data_dir,
                            threads=omp, blas_threads=blas, thread_label=label, k=args.k, nprobes=nprobes,
                            repeats=args.repeats, single=args.single, single_budget_s=args.single_budget)
                got = run_child(spec)
                log(f"[faiss] {name} {cell['index']} {cell['metric']} thr={label}: " +
                    " ".join(f"{r['variant']} {r['qps_best']:.0f} QPS R@10 {r['recall_at_10']:.3f}" for r in got))
                rows += got
    print(table(rows))
    result = dict(generated_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  command=" ".join([sys.executable] + sys.argv), machine=machine(),
                  datasets={name: manifest for name, manifest in sets}, ground_truth=GT_METHOD,
                  wall_s=time.perf_counter() - t_start, rows=rows)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
