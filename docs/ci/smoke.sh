#!/usr/bin/env bash
# A smoke test of knn-runner against an S3 server, for CI (docs/ci.md): upload the bundled wine
# data, run a training job with a test channel, serve the model, and check the endpoint's answers.
# Exits non-zero on the first thing that is wrong.
#
#   docs/ci/smoke.sh            from the repository's top folder
#
# Environment: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (AWS_REGION) and
# KNN_S3_BUCKET (an existing bucket); optional KNN_RUNNER (default build/runner/knn-runner),
# KNN_CI_PREFIX (key prefix, default ci), KNN_SMOKE_PORT (default 8080; 0 = any free port),
# KNN_PYTHON (default python3).
set -euo pipefail
: "${KNN_S3_BUCKET:?set KNN_S3_BUCKET to an existing bucket}"
runner=${KNN_RUNNER:-build/runner/knn-runner}
python=${KNN_PYTHON:-python3}
s3=s3://$KNN_S3_BUCKET/${KNN_CI_PREFIX:-ci}
work=$(mktemp -d)
serve_pid=
cleanup() {
    if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== data: three wines in four to train on, every fourth to test"
awk 'NR % 4 != 0' examples/data/wine.csv >"$work/train.csv"
awk 'NR % 4 == 0' examples/data/wine.csv >"$work/test.csv"
"$runner" s3 cp "$work/train.csv" "$s3/train/train.csv"
"$runner" s3 cp "$work/test.csv" "$s3/test/test.csv"

echo "== training job"
cat >"$work/job.json" <<EOF
{"TrainingJobName": "ci-wine",
 "HyperParameters": {"feature_dim": "13", "k": "5", "sample_size": "1000", "predictor_type": "classifier"},
 "InputDataConfig": [
   {"ChannelName": "train", "ContentType": "text/csv;label_size=1",
    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "$s3/train/"}}},
   {"ChannelName": "test", "ContentType": "text/csv;label_size=1",
    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "$s3/test/"}}}],
 "OutputDataConfig": {"S3OutputPath": "$s3/output"}}
EOF
"$runner" train --manifest "$work/job.json" --overwrite --json 2>"$work/train.log" >"$work/summary.json" || {
    tail -5 "$work/train.log" >&2
    exit 1
}
accuracy=$("$python" -c '
import json, sys
s = json.load(open(sys.argv[1]))
assert s["TrainingJobStatus"] == "Completed", s["TrainingJobStatus"]
print(s["FinalMetrics"]["test:accuracy"])' "$work/summary.json")
echo "test:accuracy = $accuracy"
grep -q "#test_score (algo-1) : ('accuracy', " "$work/train.log"

echo "== endpoint"
"$runner" serve --model "$s3/output/ci-wine/output/model.tar.gz" --host 127.0.0.1 \
    --port "${KNN_SMOKE_PORT:-8080}" 2>"$work/serve.log" &
serve_pid=$!
port=
for _ in $(seq 1 300); do
    port=$(sed -n 's/.*knn-runner serve: ready on port \([0-9][0-9]*\).*/\1/p' "$work/serve.log")
    [ -n "$port" ] && break
    kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$port" ] || { cat "$work/serve.log" >&2; echo "smoke: the endpoint did not start" >&2; exit 1; }
url=http://127.0.0.1:$port
curl -sf "$url/ping" >/dev/null
cut -d, -f2- "$work/test.csv" |
    curl -sf -H 'Content-Type: text/csv' -H 'Accept: application/json' --data-binary @- "$url/invocations" \
        >"$work/answers.json"
head -2 "$work/test.csv" | cut -d, -f2- |
    sed 's/^/{"features": [/; s/$/]}/' |
    curl -sf -H 'Content-Type: application/jsonlines' -H 'Accept: application/jsonlines; verbose=true' \
        --data-binary @- "$url/invocations" >"$work/verbose.jsonl"
"$python" - "$work/test.csv" "$work/answers.json" "$work/verbose.jsonl" "$accuracy" <<'EOF'
import json, sys
truth = [float(line.split(",")[0]) for line in open(sys.argv[1])]
predicted = [p["predicted_label"] for p in json.load(open(sys.argv[2]))["predictions"]]
assert len(predicted) == len(truth), (len(predicted), len(truth))
endpoint = sum(p == t for p, t in zip(predicted, truth)) / len(truth)
assert abs(endpoint - float(sys.argv[4])) < 1e-9, (endpoint, sys.argv[4])
verbose = [json.loads(line) for line in open(sys.argv[3])]
assert len(verbose) == 2 and all(len(v["labels"]) == 5 and len(v["distances"]) == 5 for v in verbose), verbose
assert all(v["distances"] == sorted(v["distances"]) for v in verbose), verbose
print(f"endpoint: {len(truth)} answers, accuracy {endpoint:.4f} (the job's), verbose answers with 5 neighbours")
EOF
echo "smoke: OK"
