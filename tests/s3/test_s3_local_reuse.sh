#!/usr/bin/env bash
# scripts/s3-local start never drops a running server's data: a second `start` on the same folder
# reuses the server (same endpoint, the uploaded object still there) and says so; a `start` asking
# for another port is refused; `start --reset` starts afresh (a new server, the object gone).
# Starts its own server (twice) in a scratch folder: about 40 s.
set -uo pipefail
src=${KNN_SOURCE_DIR:?run through ctest}
runner=${KNN_RUNNER:?run through ctest}
tmp=$(mktemp -d)
dir=$tmp/s3
trap '"$src/scripts/s3-local" stop --dir "$dir" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
s3local() { "$src/scripts/s3-local" "$@" --dir "$dir"; }
endpoint_of() { sed -n 's/^AWS_ENDPOINT_URL=//p' "$1"; }

s3local start >"$tmp/env1" 2>"$tmp/start1.err" || { cat "$tmp/start1.err"; echo "FAIL: first start"; exit 1; }
set -a; . "$tmp/env1"; set +a
key=s3://$KNN_S3_BUCKET/newcomer-reuse/kept.txt
echo "data a user uploaded" >"$tmp/kept.txt"
"$runner" s3 cp --quiet "$tmp/kept.txt" "$key" || fail "upload"

# 1. start again: the same server, the object still there, and a line saying so.
s3local start >"$tmp/env2" 2>"$tmp/start2.err" || fail "second start exits non-zero: $(cat "$tmp/start2.err")"
[ "$(endpoint_of "$tmp/env2")" = "$(endpoint_of "$tmp/env1")" ] ||
    fail "second start moved the server: $(endpoint_of "$tmp/env1") -> $(endpoint_of "$tmp/env2")"
grep -q "reusing the server already running at $(endpoint_of "$tmp/env1")" "$tmp/start2.err" ||
    fail "second start does not say it reuses the server: $(cat "$tmp/start2.err")"
"$runner" s3 cp "$key" - 2>/dev/null | cmp -s - "$tmp/kept.txt" || fail "the object is gone after a second start"

# 2. another port while it runs: refused, with the way out named; the server and object stay.
port=$(endpoint_of "$tmp/env1"); port=${port##*:}
s3local start --port $((port == 65000 ? 65001 : 65000)) >/dev/null 2>"$tmp/start3.err" && fail "start on another port succeeded"
grep -q -- "--reset" "$tmp/start3.err" || fail "the refusal does not name --reset: $(cat "$tmp/start3.err")"
"$runner" s3 cp "$key" - 2>/dev/null | cmp -s - "$tmp/kept.txt" || fail "the object is gone after a refused start"

# 3. --reset: a fresh server, without the object.
s3local start --reset >"$tmp/env4" 2>"$tmp/start4.err" || { cat "$tmp/start4.err"; fail "start --reset"; }
set -a; . "$tmp/env4"; set +a
"$runner" s3 ls "s3://$KNN_S3_BUCKET/" >/dev/null 2>&1 || fail "the reset server does not answer"
"$runner" s3 cp "$key" - >/dev/null 2>&1 && fail "the object survived --reset"

[ $fails = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "ok"
