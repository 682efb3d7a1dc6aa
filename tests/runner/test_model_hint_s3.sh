#!/usr/bin/env bash
# `serve --model` (and query, transform) given the S3 prefix of a job's output rather than its
# model.tar.gz: the error names the model.tar.gz found under that prefix.
set -uo pipefail
runner=${KNN_RUNNER:?run through ctest}
src=${KNN_SOURCE_DIR:?run through ctest}
env_file=${KNN_BINARY_DIR:?run through ctest}/s3-local/env
[ -f "$env_file" ] || { echo "no S3 server (s3_server fixture)"; exit 103; }
set -a; . "$env_file"; set +a
tmp=$(mktemp -d)
base=s3://$KNN_S3_BUCKET/newcomer-model-hint-$$
trap '"$runner" s3 rm --recursive --quiet "$base/" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

mkdir -p "$tmp/train"
cp "$src/examples/data/wine.csv" "$tmp/train/"
cat >"$tmp/job.json" <<JSON
{"TrainingJobName": "hint",
 "HyperParameters": {"feature_dim": "13", "k": "3", "sample_size": "1000", "predictor_type": "classifier"},
 "InputDataConfig": [{"ChannelName": "train", "ContentType": "text/csv;label_size=1",
   "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "file://$tmp/train/"}}}],
 "OutputDataConfig": {"S3OutputPath": "$base/output"}}
JSON
"$runner" train --manifest "$tmp/job.json" >/dev/null 2>"$tmp/train.log" || { cat "$tmp/train.log"; exit 1; }

for prefix in "$base/output" "$base/output/" "$base/output/hint"; do
    timeout 60 "$runner" serve --model "$prefix" --port 0 --host 127.0.0.1 >/dev/null 2>"$tmp/err"
    rc=$?
    [ $rc = 1 ] || fail "serve --model $prefix: exit $rc, not 1"
    grep -q -- "--model wants the model.tar.gz itself, e.g. $base/output/hint/output/model.tar.gz" "$tmp/err" ||
        fail "serve --model $prefix: no hint: $(grep -i error "$tmp/err")"
done
# A wrong key that is no prefix of a model: still told what --model wants.
timeout 60 "$runner" query --model "$base/nothing" </dev/null >/dev/null 2>"$tmp/err"
grep -q "model.tar.gz" "$tmp/err" || fail "a missing key: no word of what --model wants: $(cat "$tmp/err")"

[ $fails = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "ok"
