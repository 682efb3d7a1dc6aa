#!/usr/bin/env bash
# Cross-check with an independent client, Debian's awscli: what knn-runner uploads reads back
# byte-identical with aws, and what aws uploads (multipart included) reads back with knn-runner.
set -euo pipefail
. "$KNN_SOURCE_DIR/tests/s3/s3-test-env.sh" awscli-crosscheck
work=$(mktemp -d)
trap 's3_clean_prefix; rm -rf "$work"' EXIT
K=${KNN_RUNNER:?}
B=$KNN_S3_BUCKET
P=$KNN_S3_PREFIX
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$work/src" "$work/mine" "$work/theirs"
: >"$work/src/empty.bin"
printf 'x' >"$work/src/one.bin"
head -c $((5 * 1024 * 1024 + 1)) /dev/urandom >"$work/src/five-mib-plus-one.bin"
head -c $((21 * 1024 * 1024 + 7)) /dev/urandom >"$work/src/twenty-one-mib.bin"
printf 'spaces, plus, unicode\n' >"$work/src/name with space+plus é.txt"

# ours -> aws (one knn-runner upload per file; aws is slow to start, so one recursive download)
for f in "$work"/src/*; do
    "$K" s3 cp --quiet "$f" "s3://$B/${P}ours/$(basename "$f")"
done
aws_local s3 cp --only-show-errors --recursive "s3://$B/${P}ours/" "$work/theirs"
diff -r "$work/src" "$work/theirs" || fail "aws read back our objects differently"
# Our multipart object has the ETag S3 defines for it (aws sees the same object).
etag=$(aws_local s3api head-object --bucket "$B" --key "${P}ours/twenty-one-mib.bin" --query ETag --output text)
case "$etag" in *-3\"|*-3) ;; *) fail "ETag of our 3-part upload is $etag" ;; esac

# aws -> ours (aws uploads 21 MiB as multipart with 8 MiB parts)
aws_local s3 cp --only-show-errors --recursive "$work/src" "s3://$B/${P}theirs/"
etag=$(aws_local s3api head-object --bucket "$B" --key "${P}theirs/twenty-one-mib.bin" --query ETag --output text)
case "$etag" in *-*) ;; *) fail "aws did not upload twenty-one-mib.bin as multipart (ETag $etag)" ;; esac
"$K" s3 cp --quiet --recursive "s3://$B/${P}theirs" "$work/mine"
diff -r "$work/src" "$work/mine" || fail "knn-runner read back aws's objects differently"
"$K" s3 cp "s3://$B/${P}theirs/twenty-one-mib.bin" - | cmp - "$work/src/twenty-one-mib.bin" || fail "stdout copy differs"

# Both list the same keys and sizes.
"$K" s3 ls --recursive "s3://$B/$P" | awk '{print $3, substr($0, index($0, $4))}' | sort >"$work/ours.txt"
aws_local s3api list-objects-v2 --bucket "$B" --prefix "$P" --query 'Contents[].[Size,Key]' --output text |
    awk -F'\t' '{print $1, $2}' | sort >"$work/theirs.txt"
diff "$work/ours.txt" "$work/theirs.txt" || fail "listings differ"
[ "$(wc -l <"$work/ours.txt")" -eq 10 ] || fail "expected 10 objects, listed $(wc -l <"$work/ours.txt")"
echo "awscli cross-check: ok"
