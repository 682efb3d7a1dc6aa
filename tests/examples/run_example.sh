#!/usr/bin/env bash
# Run one example as a user would (examples/<name>/run), against the s3_server fixture's local
# S3, keep its printed output, and check the printed results with check_examples.py <name>.
#
#   run_example.sh NAME      (ctest sets KNN_SOURCE_DIR, KNN_BINARY_DIR, KNN_RUNNER, KNN_PYTHON)
set -euo pipefail
name=${1:?example name}
env_file=$KNN_BINARY_DIR/s3-local/env
[ -f "$env_file" ] || { echo "no local S3 server ($env_file): run with the s3_server fixture"; exit 1; }
set -a
. "$env_file"
set +a
out=$KNN_BINARY_DIR/tests/examples/$name
rm -rf "$out"
mkdir -p "$out"
export KNN_EXAMPLE_OUT=$out
# A prefix of our own: a rerun against a reused server never sees an earlier run's objects.
export KNN_EXAMPLE_PREFIX=test-examples/$name-$(date +%s)-$$
"$KNN_SOURCE_DIR/examples/$name/run" >"$out/stdout.txt" 2>"$out/stderr.txt" || {
    rc=$?
    cat "$out/stdout.txt"
    tail -40 "$out/stderr.txt"
    echo "run_example: examples/$name/run failed (exit $rc)"
    exit 1
}
cat "$out/stdout.txt"
"${KNN_PYTHON:-/usr/bin/python3}" "$KNN_SOURCE_DIR/tests/examples/check_examples.py" "$name" "$out"
"$KNN_RUNNER" s3 rm --recursive --quiet "s3://$KNN_S3_BUCKET/$KNN_EXAMPLE_PREFIX/"
