#!/usr/bin/env bash
# The s3_server ctest fixture: `start DIR` starts the local Ceph RGW (scripts/s3-local) in DIR and
# leaves DIR/env for the tests; `stop DIR` stops it. If KNN_S3_REUSE_ENV points at the env file of
# a server that is already running (scripts/s3-local start), start copies it instead and stop
# leaves that server alone.
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?DIR}
root=${KNN_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
case "$cmd" in
start)
    if [ -n "${KNN_S3_REUSE_ENV:-}" ] && [ -f "$KNN_S3_REUSE_ENV" ]; then
        endpoint=$(sed -n 's/^AWS_ENDPOINT_URL=//p' "$KNN_S3_REUSE_ENV")
        code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$endpoint/" || true)
        if [ "$code" = 200 ] || [ "$code" = 403 ]; then
            mkdir -p "$dir"
            cp "$KNN_S3_REUSE_ENV" "$dir/env.tmp" && mv "$dir/env.tmp" "$dir/env"
            touch "$dir/reused"
            echo "s3_server: reusing $endpoint ($KNN_S3_REUSE_ENV)"
            exit 0
        fi
        echo "s3_server: KNN_S3_REUSE_ENV=$KNN_S3_REUSE_ENV does not answer (HTTP $code): starting our own"
    fi
    # A second try if the first fails (a free port taken by someone else in between, a slow start).
    "$root/scripts/s3-local" start --dir "$dir" --port 0 ||
        { echo "s3_server: first start failed, trying again"; "$root/scripts/s3-local" start --dir "$dir" --port 0; }
    ;;
stop)
    if [ -f "$dir/reused" ]; then
        rm -f "$dir/reused" "$dir/env"
        exit 0
    fi
    "$root/scripts/s3-local" stop --dir "$dir"
    rm -f "$dir/env"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
