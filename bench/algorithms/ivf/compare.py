#!/usr/bin/python3
"""Our IVFFlat / IVFPQ beside Debian's FAISS, on the same .npy files, thread count and run.

    /usr/bin/python3 bench/algorithms/ivf/compare.py --bench build/bench/algorithms/ivf/bench_ivf \\
        [--threads 1] [--runs 3] [--out ivf-compare.json]

Each run measures FAISS (our anchor harness, bench/anchor/faiss_anchor.py, one child process
per cell) and then us (bench_ivf), alternately, so both see the same machine load; the table
reports the median over runs of each ratio. The machine is shared: run it a few times.

What is compared (the targets of the IVF work):
  IVFFlat  QPS at the smallest nprobe reaching recall@10 >= 0.97 (gaussian) / 0.99 (topics),
           each side at its own such nprobe;
  IVFPQ    train and add seconds; QPS at the smallest nprobe whose recall@10 is at least FAISS's
           at nprobe 8, against FAISS at nprobe 8.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ANCHOR = os.path.join(HERE, "..", "..", "anchor", "faiss_anchor.py")
DATA = os.environ.get("KNN_BENCH_DATA", os.path.join(os.path.expanduser("~"), ".cache", "knn-bench-data"))
NPROBES = [2, 3, 4, 5, 6, 8, 10, 12, 16]
TARGET = {"gaussian": 0.97, "topics": 0.99}
PQ_M = {"gaussian": 16, "topics": 5}
# AVX2 FAISS 1.8.0 / Debian FAISS 1.7.3, from bench/README.md (1 thread)
AVX2_RATIO = {
    ("ivfflat", "gaussian", "qps"): 4799 / 965,
    ("ivfflat", "topics", "qps"): 95000 / 21234,
    ("ivfpq", "gaussian", "train"): 4.4 / 13.5,
    ("ivfpq", "gaussian", "add"): 0.95 / 6.6,
}
LIMIT = {
    ("ivfflat", "qps"): ">= 5.5",
    ("ivfpq", "train"): "<= 0.3",
    ("ivfpq", "add"): "<= 0.15",
    ("ivfpq", "qps"): ">= 2.6",
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_faiss(threads, out):
    cmd = [sys.executable, ANCHOR, "--datasets", "gaussian,topics",
           "--only", "ivfflat,ivfpq", "--ivf-metrics", "l2", "--threads", str(threads),
           "--nprobe", ",".join(map(str, NPROBES)), "--repeats", "3", "--single", "20", "--single-budget", "0.2",
           "--data-dir", DATA, "--out", out]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    rows = json.load(open(out))["rows"]
    res = {}
    for r in rows:
        kind = "ivfflat" if r["index"].startswith("IndexIVFFlat") else "ivfpq"
        m = r.get("params", {}).get("m")
        if kind == "ivfpq" and m != PQ_M[r["dataset"]]:
            continue
        res.setdefault((kind, r["dataset"]), []).append(dict(
            nprobe=r["params"]["nprobe"], qps=r["qps_best"], recall=r["recall_at_10"], train_s=r["train_s"],
            add_s=r["add_s"], peak_rss_mb=r["peak_rss_mb"]))
    return res


def run_ours(bench, threads):
    res = {}
    for ds in ("gaussian", "topics"):
        for kind in ("ivfflat", "ivfpq"):
            cmd = [bench, "--base", os.path.join(DATA, f"{ds}_base.npy"), "--query", os.path.join(DATA, f"{ds}_query.npy"),
                   "--gt", os.path.join(DATA, f"{ds}_gt_l2.npy"), "--index", kind, "--m", str(PQ_M[ds]),
                   "--threads", str(threads), "--nprobe", ",".join(map(str, NPROBES)), "--repeats", "3",
                   "--name", ds]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            for line in out.splitlines():
                r = json.loads(line)
                res.setdefault((kind, ds), []).append(dict(
                    nprobe=r["nprobe"], qps=r["qps"], recall=r["recall_at_10"], train_s=r["train_s"],
                    add_s=r["add_s"], peak_rss_mb=r["peak_rss_mb"], rss_data_mb=r["rss_data_mb"],
                    rss_built_mb=r["rss_built_mb"]))
    return res


def at_recall(rows, target):
    """The row of the smallest nprobe whose recall reaches target (None if none does)."""
    ok = [r for r in sorted(rows, key=lambda r: r["nprobe"]) if r["recall"] >= target - 1e-9]
    return ok[0] if ok else None


def compare(faiss, ours):
    out = {}
    for ds in ("gaussian", "topics"):
        f = at_recall(faiss[("ivfflat", ds)], TARGET[ds])
        o = at_recall(ours[("ivfflat", ds)], TARGET[ds])
        if f and o:
            out[("ivfflat", ds, "qps")] = dict(ours=o["qps"], faiss=f["qps"], ratio=o["qps"] / f["qps"],
                                              detail=f"nprobe {o['nprobe']} R={o['recall']:.3f} vs "
                                                     f"nprobe {f['nprobe']} R={f['recall']:.3f}")
        fp = [r for r in faiss[("ivfpq", ds)] if r["nprobe"] == 8][0]
        op = ours[("ivfpq", ds)]
        out[("ivfpq", ds, "train")] = dict(ours=op[0]["train_s"], faiss=fp["train_s"],
                                           ratio=op[0]["train_s"] / fp["train_s"], detail="s")
        out[("ivfpq", ds, "add")] = dict(ours=op[0]["add_s"], faiss=fp["add_s"], ratio=op[0]["add_s"] / fp["add_s"],
                                         detail="s")
        o = at_recall(op, fp["recall"])
        if o:
            out[("ivfpq", ds, "qps")] = dict(ours=o["qps"], faiss=fp["qps"], ratio=o["qps"] / fp["qps"],
                                            detail=f"nprobe {o['nprobe']} R={o['recall']:.3f} vs "
                                                   f"nprobe 8 R={fp['recall']:.3f}")
        for kind in ("ivfflat", "ivfpq"):
            r = ours[(kind, ds)][0]
            out[(kind, ds, "rss")] = dict(ours=r["peak_rss_mb"], faiss=faiss[(kind, ds)][0]["peak_rss_mb"],
                                          ratio=r["peak_rss_mb"] / faiss[(kind, ds)][0]["peak_rss_mb"],
                                          detail=f"ours: data {r['rss_data_mb']:.0f} MB, built "
                                                 f"{r['rss_built_mb']:.0f} MB")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, help="the bench_ivf binary")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default="ivf-compare.json")
    args = ap.parse_args()

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            log(f"[run {i + 1}/{args.runs}] FAISS ...")
            faiss = run_faiss(args.threads, os.path.join(tmp, f"faiss{i}.json"))
            log(f"[run {i + 1}/{args.runs}] knn ...")
            ours = run_ours(args.bench, args.threads)
            c = compare(faiss, ours)
            for k, v in sorted(c.items()):
                log(f"    {k}: ours {v['ours']:.4g} FAISS {v['faiss']:.4g} ratio {v['ratio']:.3f} ({v['detail']})")
            runs.append(dict(faiss={"|".join(k): v for k, v in faiss.items()},
                             ours={"|".join(k): v for k, v in ours.items()},
                             compare={"|".join(k): v for k, v in c.items()}))
    keys = sorted({k for r in runs for k in r["compare"]})
    print(f"threads = {args.threads}, {args.runs} runs, medians\n")
    print("| measure | ours | Debian FAISS | ratio (median) | ratios per run | AVX2 FAISS ratio | limit |")
    print("|---|---|---|---|---|---|---|")
    for key in keys:
        vals = [r["compare"][key] for r in runs if key in r["compare"]]
        kind, ds, what = key.split("|")
        ratio = statistics.median(v["ratio"] for v in vals)
        avx2 = AVX2_RATIO.get((kind, ds, what))
        per_run = ", ".join("%.2f" % v["ratio"] for v in vals)
        avx2_text = "%.2f" % avx2 if avx2 else "-"
        ours_med = statistics.median(v["ours"] for v in vals)
        faiss_med = statistics.median(v["faiss"] for v in vals)
        print(f"| {kind} {ds} {what} ({vals[-1]['detail']}) | {ours_med:.4g} | {faiss_med:.4g} | {ratio:.2f} | "
              f"{per_run} | {avx2_text} | {LIMIT.get((kind, what), '-')} |")
    json.dump(dict(threads=args.threads, runs=runs), open(args.out, "w"), indent=1)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
