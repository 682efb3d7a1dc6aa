#!/usr/bin/env bash
# knn-runner query: a model trained from the bundled wine data (file://, no server) asked about
# held-out wines. Checked against independent computations:
#  - distances and labels: numpy's brute-force 5 nearest (squared L2) over the training rows;
#  - --ids: FAISS reading the model's own index file and searching it;
#  - CSV, JSON Lines and RecordIO-protobuf input, a file or stdin, give the same answers; --k 2
#    shows the first two; --format table prints a row per neighbour;
#  - transform --input - --output - writes what it writes to a folder;
#  - a bad row fails with exit 1 and a message naming it; usage errors exit 2.
set -uo pipefail
runner=${KNN_RUNNER:?run through ctest}
src=${KNN_SOURCE_DIR:?run through ctest}
py=${KNN_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

mkdir -p "$tmp/train" "$tmp/model"
awk 'NR % 5 != 0' "$src/examples/data/wine.csv" >"$tmp/train/train.csv"
awk 'NR % 5 == 0' "$src/examples/data/wine.csv" >"$tmp/test.csv"
cut -d, -f2- "$tmp/test.csv" >"$tmp/rows.csv"
cat >"$tmp/job.json" <<JSON
{"TrainingJobName": "query-wine",
 "HyperParameters": {"feature_dim": "13", "k": "5", "sample_size": "1000", "predictor_type": "classifier"},
 "InputDataConfig": [{"ChannelName": "train", "ContentType": "text/csv;label_size=1",
   "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "file://$tmp/train/"}}}],
 "OutputDataConfig": {"S3OutputPath": "file://$tmp/output"}}
JSON
"$runner" train --manifest "$tmp/job.json" >/dev/null 2>"$tmp/train.log" || { cat "$tmp/train.log"; exit 1; }
model=$tmp/output/query-wine/output/model.tar.gz
tar -xzf "$model" -C "$tmp/model"

# 1. JSON Lines from a CSV file, with ids, against numpy and FAISS.
"$runner" query --model "$model" --input "$tmp/rows.csv" --ids >"$tmp/answers.jsonl" 2>"$tmp/err" ||
    fail "query --input rows.csv: $(cat "$tmp/err")"
"$py" - "$tmp/train/train.csv" "$tmp/test.csv" "$tmp/answers.jsonl" "$tmp/model/model_algo-1" <<'PY' || fail "answers differ from numpy / FAISS"
import json, sys
import numpy as np
import faiss
train = np.loadtxt(sys.argv[1], delimiter=",", ndmin=2)
test = np.loadtxt(sys.argv[2], delimiter=",", ndmin=2)
answers = [json.loads(l) for l in open(sys.argv[3])]
assert len(answers) == len(test), f"{len(answers)} answers for {len(test)} rows"
x, q = train[:, 1:].astype(np.float32), test[:, 1:].astype(np.float32)
d2 = ((q[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
order = np.argsort(d2, axis=1, kind="stable")[:, :5]
index = faiss.read_index(sys.argv[4])
fd, fi = index.search(q, 5)
bad = 0
# float32 squared distances are computed as |q|^2 + |x|^2 - 2 q.x: their rounding error is a few
# float32 epsilons of those terms (wine's proline makes them ~1e6), not of the distance.
tol = 4 * np.finfo(np.float32).eps * ((q.astype(np.float64) ** 2).sum(1).max() + (x.astype(np.float64) ** 2).sum(1).max())
for r, a in enumerate(answers):
    want_d = d2[r, order[r]]
    ok = (np.allclose(a["distances"], want_d, rtol=1e-5, atol=tol)
          and a["labels"] == [float(train[j, 0]) for j in order[r]]
          and a["ids"] == [int(i) for i in fi[r]]
          and np.allclose(a["distances"], fd[r], rtol=1e-5, atol=tol))
    votes = np.bincount(train[order[r], 0].astype(int))
    ok = ok and votes[int(a["predicted_label"])] == votes.max()  # a tie may go either way
    if not ok:
        bad += 1
        print(f"row {r + 1}: got {a}, numpy {want_d.tolist()} {train[order[r], 0].tolist()}, faiss ids {fi[r].tolist()}")
sys.exit(1 if bad else 0)
PY

# 2. The same rows as stdin, JSON Lines and RecordIO-protobuf: the same answers.
"$runner" query --model "$model" --ids <"$tmp/rows.csv" >"$tmp/stdin.jsonl" 2>"$tmp/err" || fail "query from stdin: $(cat "$tmp/err")"
cmp -s "$tmp/answers.jsonl" "$tmp/stdin.jsonl" || fail "stdin answers differ from the file's"
"$py" -c 'import sys
for l in open(sys.argv[1]):
    print("{\"features\": [%s]}" % l.strip())' "$tmp/rows.csv" >"$tmp/rows.jsonl"
"$runner" query --model "$model" --ids --input "$tmp/rows.jsonl" >"$tmp/jsonl.jsonl" 2>"$tmp/err" || fail "query jsonl: $(cat "$tmp/err")"
cmp -s "$tmp/answers.jsonl" "$tmp/jsonl.jsonl" || fail "JSON Lines answers differ from CSV's"
"$runner" recordio convert --to recordio --label-size 1 "$tmp/test.csv" "$tmp/test.rec" 2>"$tmp/err" || fail "convert: $(cat "$tmp/err")"
"$runner" query --model "$model" --ids --input "$tmp/test.rec" >"$tmp/rec.jsonl" 2>"$tmp/err" || fail "query recordio: $(cat "$tmp/err")"
cmp -s "$tmp/answers.jsonl" "$tmp/rec.jsonl" || fail "RecordIO-protobuf answers differ from CSV's"
"$runner" query --model "$model" --content-type 'text/csv;label_size=1' --ids <"$tmp/test.csv" >"$tmp/label.jsonl" 2>&1 ||
    fail "query label_size=1"
cmp -s "$tmp/answers.jsonl" "$tmp/label.jsonl" || fail "label_size=1 answers differ"

# 3. --k 2: the first two neighbours of each answer; --format table: a line per neighbour.
"$runner" query --model "$model" --k 2 --input "$tmp/rows.csv" >"$tmp/k2.jsonl" 2>&1 || fail "query --k 2"
"$py" - "$tmp/answers.jsonl" "$tmp/k2.jsonl" <<'PY' || fail "--k 2 is not the first two neighbours"
import json, sys
full = [json.loads(l) for l in open(sys.argv[1])]
k2 = [json.loads(l) for l in open(sys.argv[2])]
assert len(full) == len(k2)
for a, b in zip(full, k2):
    assert b == {"predicted_label": a["predicted_label"], "labels": a["labels"][:2], "distances": a["distances"][:2]}, (a, b)
PY
"$runner" query --model "$model" --format table --ids <"$tmp/rows.csv" >"$tmp/table.txt" 2>&1 || fail "--format table"
[ "$(grep -c '^row [0-9]*: predicted' "$tmp/table.txt")" = "$(wc -l <"$tmp/rows.csv")" ] || fail "table: not a block per row"
[ "$(grep -cE '^ +[1-5] +[0-9.]+ +[0-9.e+-]+ +[0-9]+$' "$tmp/table.txt")" = $(($(wc -l <"$tmp/rows.csv") * 5)) ] ||
    fail "table: not a line per neighbour: $(head -8 "$tmp/table.txt")"

# 4. transform with '-': stdin to stdout gives what it writes for the same rows as a file, and the
#    same predictions as query.
mkdir -p "$tmp/tin"
cp "$tmp/rows.csv" "$tmp/tin/rows.csv"
"$runner" transform --model "$model" --content-type text/csv --accept 'application/jsonlines; verbose=true' \
    --input "$tmp/tin" --output "$tmp/tout" 2>"$tmp/err" || fail "transform to a folder: $(cat "$tmp/err")"
"$runner" transform --model "$model" --content-type text/csv --accept 'application/jsonlines; verbose=true' \
    --input - --output - <"$tmp/rows.csv" >"$tmp/stdout.jsonl" 2>"$tmp/err" || fail "transform - -: $(cat "$tmp/err")"
cmp -s "$tmp/tout/rows.csv.out" "$tmp/stdout.jsonl" || fail "transform - - differs from the folder's rows.csv.out"
"$py" - "$tmp/answers.jsonl" "$tmp/stdout.jsonl" <<'PY' || fail "transform - - and query disagree"
import json, sys
q = [json.loads(l) for l in open(sys.argv[1])]
t = [json.loads(l) for l in open(sys.argv[2])]
assert len(q) == len(t) and all(a["predicted_label"] == b["predicted_label"] and a["labels"] == b["labels"]
                                 for a, b in zip(q, t)), "predictions differ"
PY
"$runner" transform --model "$model" --content-type text/csv --input "$tmp/tin" --output - >"$tmp/stdout2.jsonl" 2>/dev/null ||
    fail "transform folder to -"
[ "$(wc -l <"$tmp/stdout2.jsonl")" = "$(wc -l <"$tmp/rows.csv")" ] || fail "transform folder to -: not a line per row"

# 5. Errors.
printf '1,2,3\n' | "$runner" query --model "$model" >"$tmp/out" 2>"$tmp/err"
[ $? = 1 ] || fail "a short row: not exit 1"
grep -q "row 1.*3 columns, expected 13" "$tmp/err" || fail "a short row: $(cat "$tmp/err")"
"$runner" query --model "$model" --k 6 </dev/null >/dev/null 2>"$tmp/err"
[ $? = 1 ] && grep -q "k=5" "$tmp/err" || fail "--k above the model's k: $(cat "$tmp/err")"
"$runner" query --input "$tmp/rows.csv" >/dev/null 2>&1
[ $? = 2 ] || fail "no --model: not a usage error"
# Not a model: the message names the file once (not "x.rec: x.rec: ...") and says what a model is.
cp "$tmp/test.csv" "$tmp/not-a-model.rec"
"$runner" query --model "$tmp/not-a-model.rec" </dev/null >/dev/null 2>"$tmp/err"
[ $? = 1 ] || fail "a CSV file as the model: not exit 1"
[ "$(grep -o "not-a-model.rec" "$tmp/err" | wc -l)" = 1 ] || fail "the path is not named exactly once: $(cat "$tmp/err")"
grep -q "model.tar.gz" "$tmp/err" || fail "no word of what a model is: $(cat "$tmp/err")"

[ $fails = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "ok"
