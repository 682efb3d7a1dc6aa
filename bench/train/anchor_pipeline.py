#!/usr/bin/python3
"""The anchor of bench/train: the training job a user would otherwise script in Python with Debian's
packages, doing what `knn-runner train` does for one job:

  1. download the channel with the AWS CLI (`aws s3 cp --recursive`, awscli's parallel ranged GETs);
  2. decode every RecordIO-protobuf record with python3-protobuf (C++ backend) into numpy arrays;
  3. draw sample_size rows uniformly (numpy);
  4. build the FAISS index (python3-faiss; IVF lists = floor(sqrt(sample_size)));
  5. write model_algo-1 (faiss.write_index), model_algo-1.labels, model_algo-1.json, pack them into
     model.tar.gz (tarfile, gzip) and upload it with the AWS CLI.

    anchor_pipeline.py --s3-env ENV --train s3://b/p/ --output s3://b/o/job/output/model.tar.gz
                       --dim 128 --sample 200000 --index faiss.Flat|faiss.IVFFlat --workdir DIR

Prints one JSON line: the seconds of each step and in total.
"""
import argparse
import json
import math
import mmap
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../tests/recordio"))
from check_python_protobuf import Record  # the aialgs.data schema built at run time (no protoc)

MAGIC = 0xCED7230A


def aws(env, endpoint, *args):
    subprocess.run(["/usr/bin/aws", "--endpoint-url", endpoint] + list(args), env=env, check=True,
                   stdout=subprocess.DEVNULL)


def decode_file(path, dim, xs, ys, at):
    """Append the rows of one RecordIO file to the preallocated arrays from row `at`."""
    rec = Record()
    with open(path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        off, n = 0, len(data)
        while off < n:
            magic, length = struct.unpack_from("<II", data, off)
            if magic != MAGIC:
                raise ValueError("%s: bad magic at %d" % (path, off))
            length &= (1 << 29) - 1
            off += 8
            rec.ParseFromString(data[off:off + length])
            off += (length + 3) & ~3
            if at == len(xs):  # grow (the row count is not known in advance)
                xs.resize((2 * len(xs), dim), refcheck=False)
                ys.resize(2 * len(ys), refcheck=False)
            xs[at] = rec.features["values"].float32_tensor.values
            ys[at] = rec.label["values"].float32_tensor.values[0]
            at += 1
        data.close()
    return at


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--s3-env", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--sample", type=int, required=True)
    ap.add_argument("--index", default="faiss.Flat")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--rows-hint", type=int, default=1 << 20)
    a = ap.parse_args()

    import faiss
    env = dict(os.environ)
    for line in open(a.s3_env):
        if "=" in line and not line.startswith("#"):
            k, v = line.strip().split("=", 1)
            env[k.replace("export ", "")] = v
    endpoint = env["AWS_ENDPOINT_URL"]
    cfg = os.path.join(a.workdir, "aws-config")
    with open(cfg, "w") as f:
        f.write("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
    env.update({"AWS_CONFIG_FILE": cfg, "AWS_SHARED_CREDENTIALS_FILE": os.path.join(a.workdir, "none"),
                "AWS_PAGER": ""})
    data_dir = os.path.join(a.workdir, "data")
    model_dir = os.path.join(a.workdir, "model")
    os.makedirs(model_dir, exist_ok=True)
    t = {}
    t0 = time.perf_counter()

    aws(env, endpoint, "s3", "cp", "--recursive", "--only-show-errors", a.train, data_dir)
    t["download"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    xs = np.empty((a.rows_hint, a.dim), dtype=np.float32)
    ys = np.empty(a.rows_hint, dtype=np.float32)
    n = 0
    for root, _, files in sorted(os.walk(data_dir)):
        for name in sorted(files):
            n = decode_file(os.path.join(root, name), a.dim, xs, ys, n)
    shutil.rmtree(data_dir)  # a user would keep it; removing it only frees the disk
    t["decode"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    rng = np.random.default_rng(1234)
    take = np.sort(rng.choice(n, size=min(a.sample, n), replace=False))
    x = np.ascontiguousarray(xs[take])
    y = ys[take].copy()
    del xs, ys
    t["sample"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    if a.index == "faiss.Flat":
        index = faiss.IndexFlatL2(a.dim)
    else:
        nlist = max(1, int(math.floor(math.sqrt(a.sample))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(a.dim), a.dim, nlist)
        index.train(x)
    index.add(x)
    t["build"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    faiss.write_index(index, os.path.join(model_dir, "model_algo-1"))
    y.astype("<f4").tofile(os.path.join(model_dir, "model_algo-1.labels"))
    with open(os.path.join(model_dir, "model_algo-1.json"), "w") as f:
        json.dump({"k": a.k, "predictor_type": "classifier", "normalize": False, "version": "1.0",
                   "dimension_reduction": {"type": "none"}}, f)
    tar_path = os.path.join(a.workdir, "model.tar.gz")
    with tarfile.open(tar_path, "w:gz") as tar:
        for name in ["model_algo-1", "model_algo-1.labels", "model_algo-1.json"]:
            tar.add(os.path.join(model_dir, name), arcname=name)
    t["save"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    aws(env, endpoint, "s3", "cp", "--only-show-errors", tar_path, a.output)
    t["upload"] = time.perf_counter() - t1
    t["total"] = time.perf_counter() - t0
    t["rows"] = n
    print(json.dumps(t))


if __name__ == "__main__":
    main()
