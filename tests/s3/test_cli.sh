#!/usr/bin/env bash
# knn-runner s3 ls|cp|rm: results, exit codes, clear errors, no partial files, unsafe keys.
set -euo pipefail
. "$KNN_SOURCE_DIR/tests/s3/s3-test-env.sh" cli
work=$(mktemp -d)
trap 's3_clean_prefix; rm -rf "$work"' EXIT
K=${KNN_RUNNER:?}
B=$KNN_S3_BUCKET
P=$KNN_S3_PREFIX
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_exit() { # CODE CMD... : run, check the exit status, keep stderr in $work/err
    local want=$1; shift
    set +e; "$@" >"$work/out" 2>"$work/err"; local got=$?; set -e
    [ "$got" = "$want" ] || { cat "$work/err" >&2; fail "exit $got, expected $want: $*"; }
}

mkdir -p "$work/tree/a/b"
echo one >"$work/tree/one.txt"
echo two >"$work/tree/a/two.txt"
echo three >"$work/tree/a/b/three.txt"
"$K" s3 cp --recursive "$work/tree" "s3://$B/${P}tree" >"$work/out"
[ "$(grep -c '^upload: ' "$work/out")" = 3 ] || fail "3 uploads expected: $(cat "$work/out")"

# ls: non-recursive groups by '/', recursive shows every key with its size.
"$K" s3 ls "s3://$B/${P}tree/" >"$work/ls"
grep -q ' PRE a/$' "$work/ls" || fail "no PRE a/ in: $(cat "$work/ls")"
grep -q ' 4 one.txt$' "$work/ls" || fail "no one.txt in: $(cat "$work/ls")"
"$K" s3 ls --recursive "s3://$B/${P}tree" >"$work/ls"
grep -q " 6 ${P}tree/a/b/three.txt\$" "$work/ls" || fail "recursive ls: $(cat "$work/ls")"
[ "$(wc -l <"$work/ls")" = 3 ] || fail "recursive ls has $(wc -l <"$work/ls") lines"

# cp to a folder keeps the name; from stdin needs a key.
mkdir "$work/dl"
"$K" s3 cp --quiet "s3://$B/${P}tree/a/two.txt" "$work/dl/"
[ "$(cat "$work/dl/two.txt")" = two ] || fail "download into a folder"
echo piped | "$K" s3 cp --quiet - "s3://$B/${P}piped.txt"
[ "$("$K" s3 cp "s3://$B/${P}piped.txt" -)" = piped ] || fail "stdin -> S3 -> stdout"

# A FIFO (or a device such as /dev/null) is written into, never replaced by a renamed file.
mkfifo "$work/fifo"
cat "$work/fifo" >"$work/from-fifo" &
reader=$!
"$K" s3 cp --quiet "s3://$B/${P}tree/a/b/three.txt" "$work/fifo"
wait "$reader"
[ -p "$work/fifo" ] || fail "the FIFO was replaced by a file"
[ "$(cat "$work/from-fifo")" = three ] || fail "FIFO contents: $(cat "$work/from-fifo")"

# Errors: one clear line, exit 1; usage errors exit 2; no partial file left.
expect_exit 1 "$K" s3 cp "s3://$B/${P}missing.bin" "$work/dl/missing.bin"
grep -q "no such key" "$work/err" || fail "missing key message: $(cat "$work/err")"
[ ! -e "$work/dl/missing.bin" ] || fail "a failed download left a file"
[ -z "$(find "$work/dl" -name '*.partial-*')" ] || fail "a temporary file was left"
expect_exit 1 "$K" s3 cp "$work/nope.txt" "s3://$B/${P}nope.txt"
grep -q "nope.txt: cannot open" "$work/err" || fail "missing local file message: $(cat "$work/err")"
expect_exit 1 "$K" s3 ls "s3://knn-no-such-bucket-$$/"
grep -q "NoSuchBucket" "$work/err" || fail "missing bucket message: $(cat "$work/err")"
expect_exit 1 "$K" s3 ls --endpoint-url http://127.0.0.1:9 "s3://$B/"
grep -q "cannot connect to the S3 endpoint http://127.0.0.1:9: .*check the endpoint URL" "$work/err" ||
    fail "dead endpoint message: $(cat "$work/err")"
# A server without virtual-host support answers a bucket listing with its list of buckets: an error, not
# an empty listing (curl resolves BUCKET.localhost to the loopback).
expect_exit 1 "$K" s3 ls --virtual-host --endpoint-url "$(echo "$AWS_ENDPOINT_URL" | sed 's/127\.0\.0\.1/localhost/')" "s3://$B/$P"
grep -q "ListAllMyBucketsResult.*not the expected <ListBucketResult>.*use path-style addressing" "$work/err" ||
    fail "virtual-host listing message: $(cat "$work/err")"
expect_exit 2 "$K" s3 cp "$work/tree/one.txt" "$work/elsewhere.txt"
expect_exit 2 "$K" s3 frobnicate
expect_exit 2 "$K" s3 ls --no-such-option "s3://$B/"
expect_exit 1 "$K" s3 ls "not-a-uri"
AWS_SECRET_ACCESS_KEY=wrong-secret-value expect_exit 1 "$K" s3 ls "s3://$B/$P"
grep -q "SignatureDoesNotMatch" "$work/err" || fail "bad secret message: $(cat "$work/err")"
! grep -q "wrong-secret-value" "$work/err" || fail "the secret was printed"

# A key that would escape the target folder is skipped, not written.
"$K" s3 cp --quiet "$work/tree/one.txt" "s3://$B/${P}evil/../../escaped.txt"
expect_exit 1 "$K" s3 cp --recursive "s3://$B/${P}evil" "$work/safe"
grep -q "outside" "$work/err" || fail "unsafe key message: $(cat "$work/err")"
[ ! -e "$work/escaped.txt" ] && [ ! -e "$work/safe/../escaped.txt" ] || fail "a key escaped the folder"

# rm: one key, then a whole prefix.
"$K" s3 rm "s3://$B/${P}piped.txt" | grep -q "^delete: " || fail "rm output"
"$K" s3 rm --recursive --quiet "s3://$B/$P"
[ -z "$("$K" s3 ls --recursive "s3://$B/$P")" ] || fail "objects left after rm --recursive"
expect_exit 1 "$K" s3 rm "s3://$B"
echo "cli: ok"
