#!/usr/bin/env bash
# knn-runner transform from S3 to S3 (and the model from S3) against the local S3 server of the
# s3_server fixture: test_transform.py --s3, with this run's own bucket prefix, cleaned up after.
set -euo pipefail
. "$KNN_SOURCE_DIR/tests/s3/s3-test-env.sh" serve-transform
trap s3_clean_prefix EXIT
"${KNN_PYTHON:-/usr/bin/python3}" "$KNN_SOURCE_DIR/tests/serve/test_transform.py" --s3
