"""knn-runner transform, end to end (spec 3.5): every object x under the input becomes x.out under
the output, split and batched as SageMaker does, with answers checked against numpy brute force;
a bad object is reported, leaves no output, and the others go on (exit status 1).

With --s3 the input and output are prefixes on the local S3 server (the s3_server fixture's
environment), uploaded and read back with awscli, an independent client."""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_harness as h  # noqa: E402

rng = np.random.default_rng(5)
DIM, N, K = 8, 300, 4
X = rng.normal(size=(N, DIM)).astype(np.float32)
LABELS = rng.integers(0, 5, size=N).astype(np.float32)


def run(args):
    p = subprocess.run([h.RUNNER, "transform"] + args, capture_output=True, text=True)
    return p.returncode, p.stderr


def check_jsonl(text, q, what, verbose=True):
    rows = [json.loads(line) for line in text.splitlines()]
    if not h.check(len(rows) == len(q), "%s: %d output lines for %d rows" % (what, len(rows), len(q))):
        return
    pred, lab, dist = h.brute_force(X, LABELS, q, K)
    bad = [i for i, r in enumerate(rows) if r["predicted_label"] != pred[i] or
           (verbose and not (h.same_neighbours(r["labels"], lab[i], dist[i]) and h.close_enough(r["distances"], dist[i])))]
    h.check(not bad, "%s: rows %s differ from the brute force answers" % (what, bad[:10]))


class Local:
    """Input and output in local folders."""

    def __init__(self, tmp):
        self.tmp = tmp

    def put(self, where, name, data):
        path = os.path.join(self.tmp, where, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def loc(self, where):
        return os.path.join(self.tmp, where)

    def get(self, where, name):
        path = os.path.join(self.tmp, where, name)
        if not os.path.exists(path):
            return None
        with open(path, "rb") as f:
            return f.read()

    def names(self, where):
        base = os.path.join(self.tmp, where)
        out = []
        for root, _, files in os.walk(base):
            out += [os.path.relpath(os.path.join(root, f), base) for f in files]
        return sorted(out)


class S3:
    """Input and output on the local S3 server, written and read with awscli."""

    def __init__(self, tmp, bucket, prefix):
        self.tmp = tmp
        self.bucket = bucket
        self.prefix = prefix  # this run's own key prefix, ending in "/"
        self.aws = ["/usr/bin/aws", "--endpoint-url", os.environ["AWS_ENDPOINT_URL"], "s3"]

    def put(self, where, name, data):
        path = os.path.join(self.tmp, "upload")
        with open(path, "wb") as f:
            f.write(data)
        subprocess.run(self.aws + ["cp", "--quiet", path, "s3://%s/%s%s/%s" % (self.bucket, self.prefix, where, name)], check=True)

    def loc(self, where):
        return "s3://%s/%s%s" % (self.bucket, self.prefix, where)

    def get(self, where, name):
        path = os.path.join(self.tmp, "download")
        p = subprocess.run(self.aws + ["cp", "--quiet", "s3://%s/%s%s/%s" % (self.bucket, self.prefix, where, name), path],
                           capture_output=True)
        if p.returncode != 0:
            return None
        with open(path, "rb") as f:
            return f.read()

    def names(self, where):
        p = subprocess.run(self.aws + ["ls", "--recursive", "s3://%s/%s%s/" % (self.bucket, self.prefix, where)],
                           capture_output=True, text=True)
        prefix = self.prefix + where + "/"
        return sorted(line.split(None, 3)[3][len(prefix):] for line in p.stdout.splitlines() if line.strip())


def main():
    use_s3 = "--s3" in sys.argv
    with h.TempDir("transform") as tmp:
        model_dir = h.make_model(os.path.join(tmp, "model"), X, LABELS, K)
        if use_s3:
            if not os.environ.get("AWS_ENDPOINT_URL") or not os.environ.get("KNN_S3_BUCKET"):
                print("SKIP: no local S3 server (run me through test_transform_s3.sh)")
                sys.exit(103)
            store = S3(tmp, os.environ["KNN_S3_BUCKET"], os.environ["KNN_S3_PREFIX"])
            # the model too comes from S3, as a model.tar.gz
            import tarfile
            tar_path = os.path.join(tmp, "model.tar.gz")
            with tarfile.open(tar_path, "w:gz") as t:
                for name in os.listdir(model_dir):
                    t.add(os.path.join(model_dir, name), arcname=name)
            with open(tar_path, "rb") as f:
                store.put("job", "model.tar.gz", f.read())
            # Given as an AWS https:// object URL (path style), as SageMaker's ModelDataUrl may be;
            # AWS_ENDPOINT_URL sends the request to the local server.
            model = "https://s3.us-east-1.amazonaws.com/%s/%sjob/model.tar.gz" % (store.bucket, store.prefix)
        else:
            store = Local(tmp)
            model = model_dir

        # 1. CSV, Line split, MultiRecord batches of at most 1 MB, JSON Lines verbose out.
        big = rng.normal(size=(30000, DIM)).astype(np.float32)   # ~2.4 MB of CSV: three requests
        small = rng.normal(size=(7, DIM)).astype(np.float32)
        store.put("in-csv", "big.csv", h.body_csv(big).encode())
        store.put("in-csv", "sub/small.csv", h.body_csv(small).encode().rstrip(b"\n"))  # no final newline
        store.put("in-csv", "zbad.csv", (h.body_csv(small) + "1,2,x,4,5,6,7,8\n").encode())
        code, log = run(["--model", model, "--input", store.loc("in-csv"), "--output", store.loc("out-csv"),
                         "--content-type", "text/csv", "--accept", "application/jsonlines; verbose=true",
                         "--max-payload-mb", "1"])
        h.check(code == 1, "a failed object must make the exit status 1 (got %d)" % code)
        h.check("FAILED" in log and "zbad.csv" in log and "'x'" in log, "the failed object is not reported:\n" + log[-2000:])
        h.check(store.names("out-csv") == ["big.csv.out", "sub/small.csv.out"],
                "outputs: %r (no zbad.csv.out, no partial files)" % store.names("out-csv"))
        out = store.get("out-csv", "big.csv.out")
        if h.check(out is not None, "big.csv.out is missing"):
            check_jsonl(out.decode(), big, "big.csv")
        out = store.get("out-csv", "sub/small.csv.out")
        if h.check(out is not None, "sub/small.csv.out is missing"):
            check_jsonl(out.decode(), small, "sub/small.csv")

        # 2. JSON Lines in, the default Accept (application/jsonlines, not verbose), SingleRecord.
        store.put("in-jsonl", "a.jsonl", h.body_jsonlines(small).encode())
        code, log = run(["--model", model, "--input", store.loc("in-jsonl"), "--output", store.loc("out-jsonl"),
                         "--content-type", "application/jsonlines", "--batch-strategy", "SingleRecord"])
        h.check(code == 0, "JSON Lines job failed:\n" + log[-2000:])
        out = store.get("out-jsonl", "a.jsonl.out")
        if h.check(out is not None, "a.jsonl.out is missing"):
            check_jsonl(out.decode(), small, "a.jsonl", verbose=False)
            h.check(all(set(json.loads(l)) == {"predicted_label"} for l in out.decode().splitlines()),
                    "non-verbose output has extra keys")

        # 3. RecordIO-protobuf in (RecordIO split), RecordIO-protobuf verbose out.
        store.put("in-rec", "part-0.pbr", h.body_recordio(small))
        code, log = run(["--model", model, "--input", store.loc("in-rec"), "--output", store.loc("out-rec"),
                         "--content-type", "application/x-recordio-protobuf",
                         "--accept", "application/x-recordio-protobuf; verbose=true"])
        h.check(code == 0, "RecordIO job failed:\n" + log[-2000:])
        out = store.get("out-rec", "part-0.pbr.out")
        if h.check(out is not None, "part-0.pbr.out is missing"):
            recs = h.parse_recordio(out)
            pred, lab, dist = h.brute_force(X, LABELS, small, K)
            h.check(len(recs) == len(small), "%d records out for %d in" % (len(recs), len(small)))
            for i, r in enumerate(recs[:len(small)]):
                h.check(list(r.label["predicted_label"].float32_tensor.values) == [pred[i]], "record %d predicted" % i)
                h.check(h.close_enough(r.label["distances"].float32_tensor.values, dist[i]), "record %d distances" % i)

        # 4. One JSON document per object (split None), JSON out.
        store.put("in-json", "doc.json", h.body_json(small).encode())
        code, log = run(["--model", model, "--input", store.loc("in-json/doc.json"), "--output", store.loc("out-json"),
                         "--content-type", "application/json", "--accept", "application/json"])
        h.check(code == 0, "JSON job failed:\n" + log[-2000:])
        out = store.get("out-json", "doc.json.out")
        if h.check(out is not None, "doc.json.out is missing"):
            doc = json.loads(out)
            pred, _, _ = h.brute_force(X, LABELS, small, K)
            h.check([p["predicted_label"] for p in doc["predictions"]] == list(pred), "doc.json predictions")
        h.check("rows/s" in log, "no progress/summary line in the log")
    h.finish()


if __name__ == "__main__":
    main()
