"""Helpers of the install and package tests: a small file:// training job run by a given knn-runner
binary from a folder that holds nothing of the source or build tree, with its result checked
independently (FAISS reads the index, numpy the labels, the fixture's JSON gives the truth)."""
import json
import os
import subprocess
import sys
import tarfile

import numpy as np

SKIP = 103
FIXTURE = "dense_f32_labels"  # 100 x 7 float32 rows, labels 0..4, written by the SageMaker SDK


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def clean_env():
    """The environment of a user's shell: none of ctest's variables pointing into our trees."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNN_")}
    env["PATH"] = "/usr/bin:/bin"
    return env


def forbidden_paths():
    return [p for p in (os.environ.get("KNN_SOURCE_DIR"), os.environ.get("KNN_BINARY_DIR")) if p]


def check_no_build_paths(binary):
    """No byte string of the source or build folder in the binary (debug info and __FILE__ included)."""
    with open(binary, "rb") as f:
        data = f.read()
    for p in forbidden_paths():
        check(os.path.realpath(p).encode() not in data and p.encode() not in data,
              f"{binary} contains the build machine's path {p}")


def run_small_job(binary, work):
    """Train on the SDK-written fixture through file:// URIs, with `work` as the current folder."""
    fixtures = os.path.join(os.environ["KNN_FIXTURES_DIR"], "recordio")
    data = os.path.join(work, "data", "train")
    os.makedirs(data)
    with open(os.path.join(fixtures, FIXTURE + ".rec"), "rb") as src, \
            open(os.path.join(data, "part-0.rec"), "wb") as dst:
        dst.write(src.read())
    with open(os.path.join(fixtures, FIXTURE + ".json")) as f:
        truth = json.load(f)
    manifest = {
        "TrainingJobName": "installed-binary-job",
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "HyperParameters": {"feature_dim": "7", "k": "3", "sample_size": "1000", "predictor_type": "classifier"},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": "file://" + data + "/", "S3DataDistributionType": "FullyReplicated"}}}],
        "OutputDataConfig": {"S3OutputPath": "file://" + os.path.join(work, "output")},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    with open(os.path.join(work, "job.json"), "w") as f:
        json.dump(manifest, f)
    p = subprocess.run([binary, "train", "--manifest", "job.json"], cwd=work, env=clean_env(),
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, f"the training job failed (exit {p.returncode}): {p.stderr[-2000:]}")

    model = os.path.join(work, "output", "installed-binary-job", "output", "model.tar.gz")
    check(os.path.isfile(model), f"no {model} after the job")
    out = os.path.join(work, "model")
    with tarfile.open(model) as tar:
        names = sorted(tar.getnames())
        check(names == ["model_algo-1", "model_algo-1.json", "model_algo-1.labels"],
              f"model.tar.gz holds {names}")
        tar.extractall(out)
    import faiss
    index = faiss.read_index(os.path.join(out, "model_algo-1"))
    check(index.ntotal == truth["rows"] and index.d == truth["cols"],
          f"FAISS reads an index of {index.ntotal} x {index.d}, expected {truth['rows']} x {truth['cols']}")
    labels = np.fromfile(os.path.join(out, "model_algo-1.labels"), dtype=np.float32)
    want = sorted(r["label"] for r in truth["records"])
    check(sorted(labels.tolist()) == want, "model_algo-1.labels does not hold the fixture's labels")
    return p


def check_version(binary, version):
    p = subprocess.run([binary, "--version"], env=clean_env(), capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, f"{binary} --version exited {p.returncode}")
    lines = p.stdout.splitlines()
    check(lines and lines[0] == f"knn-runner {version}", f"--version first line {lines[:1]}, expected knn-runner {version}")
    return p.stdout
