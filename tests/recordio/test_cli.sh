#!/usr/bin/env bash
# `knn-runner recordio inspect|convert` against the SDK fixtures: inspect agrees with each
# fixture's JSON, conversions give back the SDK's values and bytes, `-` works as stdin/stdout, and
# bad input fails with a clear message and leaves no output file (nor a temporary one) behind.
set -uo pipefail
runner=${KNN_RUNNER:?run through ctest}
py=${KNN_PYTHON:-/usr/bin/python3}
fx=${KNN_FIXTURES_DIR:?run through ctest}/recordio
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# 1. inspect --json agrees with the fixture's JSON.
for name in dense_f32_labels dense_f64_labels dense_int32 dense_nolabels dense_f32_f64label_pad sparse_f32 \
            sparse_empty_rows_nolabels topics_like big_dense; do
    "$runner" recordio inspect --json "$fx/$name.rec" >"$tmp/$name.inspect.json" || { fail "inspect $name"; continue; }
    "$py" - "$fx/$name.json" "$tmp/$name.inspect.json" <<'PY' || fail "inspect --json $name disagrees with the fixture"
import json, sys, collections
want = json.load(open(sys.argv[1]))
got = json.load(open(sys.argv[2]))
def check(what, a, b):
    if a != b:
        print(f"  {what}: got {a!r}, expected {b!r}"); sys.exit(1)
check("records", got["records"], want["rows"])
check("feature_dim", got["feature_dim"], want["cols"])
check("has_labels", got["has_labels"], want["has_label"])
check("bytes", got["bytes"], want["size_bytes"])
check("layout", got["layout"], "sparse" if want["sparse"] else "dense")
check("feature_dtypes", got["feature_dtypes"], [want["dtype"]])
if want["has_label"]:
    check("label_dtypes", got["label_dtypes"], [want["label_dtype"]])
    if "records" in want:
        labels = [r["label"] for r in want["records"]]
    else:
        labels = [float(k) for k, n in want["label_counts"].items() for _ in range(n)]
    import struct
    f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]
    st = got["label_stats"]
    check("label min", f32(st["min"]), f32(min(labels)))
    check("label max", f32(st["max"]), f32(max(labels)))
    if abs(st["mean"] - sum(f32(x) for x in labels) / len(labels)) > 1e-9 * max(1, abs(st["mean"])):
        print("  label mean", st["mean"]); sys.exit(1)
    distinct = collections.Counter(f32(x) for x in labels)
    if len(distinct) <= 1000:
        check("distinct", st["distinct"], len(distinct))
        check("counts", {f32(float(k)): v for k, v in st["counts"].items()}, dict(distinct))
else:
    check("label_stats", got["label_stats"], None)
PY
done
"$runner" recordio inspect "$fx/dense_f32_labels.rec" >"$tmp/inspect.txt" || fail "inspect text"
grep -q '^records: *100$' "$tmp/inspect.txt" || fail "inspect text: records line"
grep -q '^feature_dim: *7$' "$tmp/inspect.txt" || fail "inspect text: feature_dim line"
grep -q '^label counts: ' "$tmp/inspect.txt" || fail "inspect text: label counts"
"$runner" recordio inspect - <"$fx/sparse_f32.rec" | grep -q '^layout: *sparse' || fail "inspect from stdin"

# 2. recordio -> csv gives the fixture's values (as float32, label first); csv -> recordio gives
#    back the SDK's bytes for float32 data.
for name in dense_f32_labels dense_nolabels topics_like sparse_f32 dense_f64_labels dense_int32; do
    "$runner" recordio convert --to csv "$fx/$name.rec" "$tmp/$name.csv" || { fail "convert $name to csv"; continue; }
    "$py" - "$fx/$name.json" "$tmp/$name.csv" <<'PY' || fail "$name.csv values differ from the fixture"
import json, struct, sys
want = json.load(open(sys.argv[1]))
f32 = lambda x: struct.unpack("<f", struct.pack("<f", float(x)))[0]
lines = open(sys.argv[2]).read().split("\n")
assert lines[-1] == "", "missing final newline"
lines = lines[:-1]
assert len(lines) == want["rows"], (len(lines), want["rows"])
for i, (line, rec) in enumerate(zip(lines, want["records"])):
    vals = [f32(x) for x in line.split(",")]
    row = [0.0] * want["cols"]
    if "keys" in rec:
        for k, v in zip(rec["keys"], rec["values"]):
            row[k] = v
    else:
        row = rec["values"]
    exp = ([f32(rec["label"])] if want["has_label"] else []) + [f32(x) for x in row]
    if vals != exp:
        print(f"  line {i + 1}: {vals[:4]} vs {exp[:4]}"); sys.exit(1)
PY
done
for name in dense_f32_labels topics_like; do
    "$runner" recordio convert --to recordio --label-size 1 "$tmp/$name.csv" "$tmp/$name.rec" || fail "convert $name back"
    cmp -s "$tmp/$name.rec" "$fx/$name.rec" || fail "$name: csv -> recordio is not the SDK's file"
done
"$runner" recordio convert --to recordio --label-size 0 "$tmp/dense_nolabels.csv" "$tmp/dense_nolabels.rec" &&
    cmp -s "$tmp/dense_nolabels.rec" "$fx/dense_nolabels.rec" || fail "dense_nolabels: csv -> recordio"

# 3. `-` for stdin and stdout.
"$runner" recordio convert --to csv - - <"$fx/dense_f32_labels.rec" >"$tmp/stdout.csv" || fail "convert - -"
cmp -s "$tmp/stdout.csv" "$tmp/dense_f32_labels.csv" || fail "stdin/stdout conversion differs from files"
printf '1,2.5,3\r\n0,4,5e-1' | "$runner" recordio convert --to recordio - - >"$tmp/crlf.rec" || fail "CRLF csv from stdin"
"$runner" recordio inspect --json "$tmp/crlf.rec" | "$py" -c '
import json, sys; o = json.load(sys.stdin)
assert o["records"] == 2 and o["feature_dim"] == 2 and o["has_labels"], o' || fail "CRLF, no final newline"

# 4. Bad input: exit 1, a message naming the position, and no output file left behind.
expect_failure() { # name, expected message part, command...
    local name=$1 needle=$2
    shift 2
    "$@" 2>"$tmp/err.txt"
    local rc=$?
    [ $rc = 1 ] || fail "$name: exit status $rc, expected 1"
    grep -qF -- "$needle" "$tmp/err.txt" || fail "$name: message '$(cat "$tmp/err.txt")' lacks '$needle'"
}
mkdir "$tmp/out"
expect_failure "bad magic" "record 2 at offset 88: bad magic" \
    "$runner" recordio convert --to csv "$fx/corrupt_bad_magic.rec" "$tmp/out/x.csv"
expect_failure "truncated" "record 19 at offset 836: truncated record" \
    "$runner" recordio convert --to csv "$fx/corrupt_truncated_last.rec" "$tmp/out/x.csv"
expect_failure "length too big" "truncated record (length 1048576" \
    "$runner" recordio convert --to csv "$fx/corrupt_length_too_big.rec" "$tmp/out/x.csv"
expect_failure "partial header" "record 20 at offset 880: truncated header" \
    "$runner" recordio inspect "$fx/corrupt_trailing_partial_header.rec"
printf '1,2,3\n0,4,5\n1,x,6\n' >"$tmp/bad.csv"
expect_failure "bad csv" "bad.csv: line 3, column 2: 'x' is not a number" \
    "$runner" recordio convert --to recordio "$tmp/bad.csv" "$tmp/out/x.rec"
printf '1,2,3\n0,4\n' >"$tmp/short.csv"
expect_failure "short csv line" "line 2: 2 columns, expected 3" \
    "$runner" recordio convert --to recordio "$tmp/short.csv" "$tmp/out/x.rec"
expect_failure "missing file" "cannot open" "$runner" recordio inspect "$tmp/nope.rec"
[ -z "$(ls -A "$tmp/out")" ] || fail "failed conversions left files behind: $(ls -A "$tmp/out")"
# A failure does not clobber an existing OUT.
echo keep >"$tmp/out/keep.csv"
expect_failure "keep existing" "bad magic" \
    "$runner" recordio convert --to csv "$fx/corrupt_bad_magic.rec" "$tmp/out/keep.csv"
[ "$(cat "$tmp/out/keep.csv")" = keep ] || fail "a failed conversion changed an existing OUT"
[ "$(ls -A "$tmp/out")" = keep.csv ] || fail "temporary files left: $(ls -A "$tmp/out")"

# A FIFO (or a device such as /dev/null) as OUT is written into, never replaced by a renamed file
# (as root, renaming over /dev/null would replace the device for the whole machine).
mkfifo "$tmp/out/pipe"
cat "$tmp/out/pipe" >"$tmp/from-pipe.csv" &
reader=$!
"$runner" recordio convert --to csv "$fx/dense_f32_labels.rec" "$tmp/out/pipe" || fail "convert into a FIFO"
wait $reader
[ -p "$tmp/out/pipe" ] || fail "the FIFO was replaced by a regular file"
cmp -s "$tmp/from-pipe.csv" "$tmp/dense_f32_labels.csv" || fail "what went through the FIFO differs from the file output"
rm -f "$tmp/out/pipe"

# 5. Usage errors exit 2.
for args in "" "frobnicate" "convert --to xml a b" "convert --to csv a" "convert --to recordio --label-size 2 a b" \
            "inspect --bogus f"; do
    # shellcheck disable=SC2086
    "$runner" recordio $args >/dev/null 2>&1
    [ $? = 2 ] || fail "'recordio $args' should be a usage error"
done

if [ $fails -gt 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "all recordio CLI checks passed"
