#!/usr/bin/env bash
# Wait until the S3 server at $AWS_ENDPOINT_URL answers, then create the bucket $KNN_S3_BUCKET
# with a SigV4-signed PUT (curl only: no AWS CLI or mc needed). Used by the CI recipe
# (docs/ci/github-actions.yml, docs/ci.md); works against MinIO, Ceph RGW and other S3 servers.
set -euo pipefail
: "${AWS_ENDPOINT_URL:?}" "${AWS_ACCESS_KEY_ID:?}" "${AWS_SECRET_ACCESS_KEY:?}" "${KNN_S3_BUCKET:?}"
region=${AWS_REGION:-us-east-1}
for _ in $(seq 1 60); do
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$AWS_ENDPOINT_URL/" || true)
    [ "$code" != 000 ] && break
    sleep 1
done
[ "$code" != 000 ] || { echo "create-bucket: no S3 server answers at $AWS_ENDPOINT_URL" >&2; exit 1; }
code=$(curl -s -o /tmp/create-bucket.$$ -w '%{http_code}' --aws-sigv4 "aws:amz:$region:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    -X PUT "$AWS_ENDPOINT_URL/$KNN_S3_BUCKET")
if [ "$code" != 200 ]; then
    echo "create-bucket: PUT $AWS_ENDPOINT_URL/$KNN_S3_BUCKET: HTTP $code: $(cat /tmp/create-bucket.$$)" >&2
    rm -f /tmp/create-bucket.$$
    exit 1
fi
rm -f /tmp/create-bucket.$$
echo "create-bucket: s3://$KNN_S3_BUCKET at $AWS_ENDPOINT_URL"
