# Shared by the examples' `run` scripts (sourced, not run). Bash.
#
# What it gives a run script:
#   ex_init NAME          the knn-runner binary ($KNN_RUNNER, else build/runner/knn-runner, built with
#                         scripts/setup when missing), Debian's python, the output folder
#                         ($KNN_EXAMPLE_OUT, else build/examples/NAME), and the S3 location
#   ex_s3                 S3 to use: your own when KNN_S3_BUCKET is set (AWS, or the endpoint in
#                         AWS_ENDPOINT_URL); otherwise the local Ceph RGW of scripts/s3-local (reused
#                         if one is running, else started now and stopped when the example ends)
#   ex_manifest SRC DST   copy a job manifest, pointing its s3://knn-test/examples/ URIs at our
#                         bucket and prefix
#   ex_train MANIFEST LOG run `knn-runner train --manifest`: the summary on stdout, the job log in LOG
#   ex_serve MODEL        start `knn-runner serve --model MODEL` on a free loopback port; sets
#                         EX_PORT; the endpoint is stopped when the example ends (or by ex_serve_stop)
#   ex_step TEXT          print a step heading
#
# Environment a user may set:
#   KNN_RUNNER          the knn-runner binary
#   KNN_S3_BUCKET       use this bucket (with the usual AWS_* variables) instead of a local server
#   KNN_EXAMPLE_PREFIX  key prefix inside the bucket (default examples/NAME)
#   KNN_EXAMPLE_OUT     where local files (data, logs, plots) go

EX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EX_PY=${KNN_PYTHON:-/usr/bin/python3}
EX_CLEANUP=()

ex_step() { printf '\n== %s\n' "$*"; }
ex_die() { echo "$EX_NAME: $*" >&2; exit 1; }

s_ex_cleanup() {
    local i
    for ((i = ${#EX_CLEANUP[@]} - 1; i >= 0; i--)); do
        eval "${EX_CLEANUP[$i]}" || true
    done
}
trap s_ex_cleanup EXIT
trap 'exit 130' INT TERM

ex_init() {
    EX_NAME=$1
    EX_RUNNER=${KNN_RUNNER:-$EX_ROOT/build/runner/knn-runner}
    if [ ! -x "$EX_RUNNER" ]; then
        [ -z "${KNN_RUNNER:-}" ] || ex_die "KNN_RUNNER=$KNN_RUNNER is not an executable"
        echo "$EX_NAME: $EX_RUNNER is not built yet: running scripts/setup"
        "$EX_ROOT/scripts/setup" --extras || ex_die "scripts/setup failed"
    fi
    EX_OUT=${KNN_EXAMPLE_OUT:-$EX_ROOT/build/examples/$EX_NAME}
    mkdir -p "$EX_OUT"
    EX_OUT=$(cd "$EX_OUT" && pwd)
    EX_PREFIX=${KNN_EXAMPLE_PREFIX:-examples/$EX_NAME}
    EX_PREFIX=${EX_PREFIX%/}
    export PYTHONDONTWRITEBYTECODE=1
}

ex_s3() {
    if [ -n "${KNN_S3_BUCKET:-}" ]; then
        echo "S3: bucket $KNN_S3_BUCKET at ${AWS_ENDPOINT_URL_S3:-${AWS_ENDPOINT_URL:-AWS}}"
    else
        local dir=${KNN_S3_LOCAL_DIR:-/tmp/knn-s3-local-$(id -u)}
        if ! "$EX_ROOT/scripts/s3-local" status --dir "$dir" >/dev/null 2>&1; then
            echo "Starting a local S3 server (Ceph RGW, scripts/s3-local, about 20 s)..."
            # One retry: a start on a busy machine sometimes loses a race with the monitor.
            "$EX_ROOT/scripts/s3-local" start --dir "$dir" >/dev/null ||
                "$EX_ROOT/scripts/s3-local" start --dir "$dir" >/dev/null || ex_die "scripts/s3-local start failed"
            EX_CLEANUP+=("\"$EX_ROOT/scripts/s3-local\" stop --dir \"$dir\"")
        fi
        eval "$("$EX_ROOT/scripts/s3-local" env --dir "$dir")"
        echo "S3: bucket $KNN_S3_BUCKET at $AWS_ENDPOINT_URL (local Ceph RGW, $dir)"
    fi
    EX_S3=s3://$KNN_S3_BUCKET/$EX_PREFIX
}

ex_manifest() {
    sed -e "s#s3://knn-test/examples/$EX_NAME/#$EX_S3/#g" "$1" >"$2"
}

ex_train() {
    local manifest=$1 log=$2
    echo "\$ knn-runner train --manifest $(basename "$manifest") --overwrite    (log: $log)"
    if ! "$EX_RUNNER" train --manifest "$manifest" --overwrite --no-progress 2>"$log"; then
        tail -5 "$log" >&2
        ex_die "the training job failed (log: $log)"
    fi
}

ex_serve() {
    local model=$1 log=$EX_OUT/serve.log pid
    echo "\$ knn-runner serve --model $model --host 127.0.0.1 --port 0"
    "$EX_RUNNER" serve --model "$model" --host 127.0.0.1 --port 0 2>"$log" &
    pid=$!
    EX_SERVE_PID=$pid
    EX_CLEANUP+=("ex_serve_stop $pid")
    EX_PORT=
    for _ in $(seq 1 600); do
        EX_PORT=$(sed -n 's/.*knn-runner serve: ready on port \([0-9][0-9]*\).*/\1/p' "$log")
        [ -n "$EX_PORT" ] && break
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; ex_die "knn-runner serve exited"; }
        sleep 0.1
    done
    [ -n "$EX_PORT" ] || { cat "$log" >&2; ex_die "knn-runner serve did not get ready in 60 s"; }
    grep -E 'model:' "$log" | sed 's/^\[[^]]*\] /  /'
    echo "  endpoint: http://127.0.0.1:$EX_PORT/invocations"
}

# Stop one endpoint we started (SIGTERM: it finishes the requests in flight and exits).
ex_serve_stop() {
    local pid=${1:-$EX_SERVE_PID}
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
