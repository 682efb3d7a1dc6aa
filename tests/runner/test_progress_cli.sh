#!/usr/bin/env bash
# Progress of `recordio convert` and `transform`: on a terminal (a pseudo-terminal made by script(1))
# a live line with bytes of the file's size, %, rows and the time left; --quiet has none; and never
# a byte of it in the converted output on stdout (the same bytes as with --quiet).
set -uo pipefail
runner=${KNN_RUNNER:?run through ctest}
src=${KNN_SOURCE_DIR:?run through ctest}
command -v script >/dev/null || { echo "no script(1)"; exit 103; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

for i in $(seq 1 50); do cat "$src/examples/data/wine.csv"; done >"$tmp/wine.csv"
rows=$(wc -l <"$tmp/wine.csv")
size=$(stat -c %s "$tmp/wine.csv")

script -qec "'$runner' recordio convert --to recordio '$tmp/wine.csv' '$tmp/wine.rec'" /dev/null >"$tmp/tty.txt" ||
    fail "convert on a terminal failed: $(cat "$tmp/tty.txt")"
tr '\r' '\n' <"$tmp/tty.txt" >"$tmp/lines.txt"
grep -qE "wine.csv: [0-9.]+ (KiB|MiB) of [0-9.]+ (KiB|MiB) \(100%\), $rows rows, [0-9.]+ [KMG]?i?B/s, ETA" "$tmp/lines.txt" ||
    fail "no final progress line with bytes of the size, 100%, $rows rows, a rate and ETA: $(cat "$tmp/lines.txt")"
/usr/bin/python3 -c "import sys; n = $size / 1024; sys.exit(0 if '%.1f KiB of %.1f KiB' % (n, n) in open('$tmp/lines.txt').read() else 1)" ||
    fail "the progress total is not the file's size ($size bytes)"

script -qec "'$runner' recordio convert --quiet --to recordio '$tmp/wine.csv' '$tmp/wine2.rec'" /dev/null >"$tmp/quiet.txt"
[ -s "$tmp/quiet.txt" ] && fail "--quiet printed: $(cat "$tmp/quiet.txt")"
cmp -s "$tmp/wine.rec" "$tmp/wine2.rec" || fail "--quiet changed the output"

# stdout stays the data: on a terminal (stderr too) the CSV piped out is what --quiet writes.
script -qec "'$runner' recordio convert --to csv '$tmp/wine.rec' - > '$tmp/out.csv'" /dev/null >"$tmp/tty2.txt"
"$runner" recordio convert --quiet --to csv "$tmp/wine.rec" - >"$tmp/out-quiet.csv"
cmp -s "$tmp/out.csv" "$tmp/out-quiet.csv" || fail "progress leaked into stdout"
[ "$(wc -l <"$tmp/out.csv")" = "$rows" ] || fail "the CSV out has $(wc -l <"$tmp/out.csv") rows, not $rows"
grep -q "rows" "$tmp/tty2.txt" || fail "no progress on the terminal's stderr when stdout is a file"

# Not a terminal and short: nothing on stderr (lines only every 5 s).
"$runner" recordio convert --to recordio "$tmp/wine.csv" "$tmp/wine3.rec" 2>"$tmp/err"
[ -s "$tmp/err" ] && fail "a short conversion in a log printed: $(cat "$tmp/err")"

# transform on a terminal: the object's bytes of its size and %, rows; its answers unchanged.
mkdir -p "$tmp/train" "$tmp/tin"
cp "$src/examples/data/wine.csv" "$tmp/train/"
cat >"$tmp/job.json" <<JSON
{"TrainingJobName": "progress", "HyperParameters": {"feature_dim": "13", "k": "3", "sample_size": "1000",
 "predictor_type": "classifier"}, "InputDataConfig": [{"ChannelName": "train", "ContentType": "text/csv;label_size=1",
 "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "file://$tmp/train/"}}}],
 "OutputDataConfig": {"S3OutputPath": "file://$tmp/output"}}
JSON
"$runner" train --manifest "$tmp/job.json" >/dev/null 2>&1 || fail "train"
cut -d, -f2- "$tmp/wine.csv" >"$tmp/tin/rows.csv"
tsize=$(stat -c %s "$tmp/tin/rows.csv")
script -qec "'$runner' transform --model '$tmp/output/progress/output/model.tar.gz' --content-type text/csv --input '$tmp/tin' --output '$tmp/tout'" /dev/null |
    tr '\r' '\n' >"$tmp/transform.txt"
/usr/bin/python3 -c "import sys; n = $tsize / 1024; sys.exit(0 if 'object 1/1 rows.csv: %.1f KiB of %.1f KiB (100%%)' % (n, n) in open('$tmp/transform.txt').read() else 1)" ||
    fail "transform: no 'object 1/1 rows.csv: N of N (100%)' line: $(grep transform "$tmp/transform.txt" | tail -3)"
grep -q "$rows rows" "$tmp/transform.txt" || fail "transform: no '$rows rows' on the progress line"
[ "$(wc -l <"$tmp/tout/rows.csv.out")" = "$rows" ] || fail "transform: $(wc -l <"$tmp/tout/rows.csv.out") answers, not $rows"

[ $fails = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "ok"
