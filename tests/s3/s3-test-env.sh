# Source this from a shell test that needs the local S3 server (its CMake test declares
# FIXTURES_REQUIRED s3_server):
#
#     . "$KNN_SOURCE_DIR/tests/s3/s3-test-env.sh" my-test-name
#
# It exports AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
# AWS_DEFAULT_REGION, AWS_EC2_METADATA_DISABLED and KNN_S3_BUCKET from the fixture's env file
# (${KNN_S3_ENV_FILE:-$KNN_BINARY_DIR/s3-local/env}), sets KNN_S3_PREFIX to a key prefix of this run
# only ("tests/<name>/<pid>-<time>/"), points the AWS CLI at an empty config (path-style, no
# ~/.aws), and defines:
#     aws_local ARGS...     /usr/bin/aws with --endpoint-url, quiet
#     s3_clean_prefix       delete everything under $KNN_S3_PREFIX (call it from a trap)
# With no env file it exits 103, which ctest reports as a skip.
_knn_s3_env=${KNN_S3_ENV_FILE:-${KNN_BINARY_DIR:-}/s3-local/env}
if [ ! -f "$_knn_s3_env" ]; then
    echo "SKIP: $_knn_s3_env: no local S3 server (the s3_server fixture did not run)" >&2
    exit 103
fi
set -a
# shellcheck disable=SC1090
. "$_knn_s3_env"
set +a
KNN_S3_PREFIX="tests/${1:-shell}/$$-$(date +%s%N | cut -c1-13)/"
export KNN_S3_PREFIX
_knn_s3_awsdir=$(mktemp -d)
printf '[default]\nregion = %s\ns3 =\n    addressing_style = path\n' "$AWS_REGION" >"$_knn_s3_awsdir/config"
export AWS_CONFIG_FILE="$_knn_s3_awsdir/config" AWS_SHARED_CREDENTIALS_FILE="$_knn_s3_awsdir/none" AWS_PAGER=""
unset AWS_PROFILE

aws_local() {
    /usr/bin/aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"
}

s3_clean_prefix() {
    aws_local s3 rm --recursive --only-show-errors "s3://$KNN_S3_BUCKET/$KNN_S3_PREFIX" || true
    rm -rf "$_knn_s3_awsdir"
}
