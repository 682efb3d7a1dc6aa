"""Helpers of examples/manifests/run (Debian's /usr/bin/python3, standard library only).

    localize.py rewrite SRC DST    point a manifest of this folder at the S3 location and local
                                   folder in use; environment: EX_S3 (s3://bucket/prefix),
                                   EX_OUT (local folder), AWS_ENDPOINT_URL (optional)
    localize.py summary NAME FILE  one line about a job from its `knn-runner train --json` summary

The manifests name s3://knn-test/examples/manifests/ (the bucket of scripts/s3-local),
file:///tmp/knn-examples/manifests/ and, for local-s3-endpoint.json, MinIO's usual
http://127.0.0.1:9000; `rewrite` replaces them, and drops EndpointUrl when no endpoint is set
(AWS S3).
"""
import json
import os
import sys


def rewrite(src, dst):
    s3, out = os.environ["EX_S3"].rstrip("/"), os.environ["EX_OUT"].rstrip("/")
    text = open(src).read()
    text = text.replace("s3://knn-test/examples/manifests/", s3 + "/")
    text = text.replace("file:///tmp/knn-examples/manifests/", "file://" + out + "/")
    job = json.loads(text)
    if "EndpointUrl" in job:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            job["EndpointUrl"] = endpoint
        else:
            del job["EndpointUrl"]
    with open(dst, "w") as f:
        json.dump(job, f, indent=2)


def summary(name, path):
    s = json.load(open(path))
    hp = s["HyperParameters"]
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(s.get("FinalMetrics", {}).items())) or "no test channel"
    reduction = hp.get("dimension_reduction_type", "none")
    if reduction != "none":
        reduction += " to " + hp["dimension_reduction_target"]
    print(f"{name:26s} {s['TrainingJobStatus']:9s} {hp['index_type']:13s} {hp['index_metric']:13s} "
          f"reduction {reduction:8s} hosts {s['InstanceCount']}  rows sampled {s['RowsSampled']:5d}  {metrics}")


if __name__ == "__main__":
    if sys.argv[1] == "rewrite":
        rewrite(sys.argv[2], sys.argv[3])
    else:
        summary(sys.argv[2], sys.argv[3])
