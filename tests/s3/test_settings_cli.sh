#!/usr/bin/env bash
# serve and transform take --endpoint-url, --region and --profile as train and s3 do, and a profile's
# endpoint_url in ~/.aws/config reaches them: against the local S3 server, with the environment's
# endpoint and keys removed so only the option or the profile can be the source.
set -euo pipefail
. "$KNN_SOURCE_DIR/tests/s3/s3-test-env.sh" settings-cli
work=$(mktemp -d)
serve_pid=
ENDPOINT=$AWS_ENDPOINT_URL
AK=$AWS_ACCESS_KEY_ID
SK=$AWS_SECRET_ACCESS_KEY
cleanup() {
    [ -z "$serve_pid" ] || kill "$serve_pid" 2>/dev/null || true
    export AWS_ENDPOINT_URL=$ENDPOINT AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK
    s3_clean_prefix
    rm -rf "$work"
}
trap cleanup EXIT
awsl() { AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK /usr/bin/aws --endpoint-url "$ENDPOINT" "$@"; }
K=${KNN_RUNNER:?}
MAKE_MODEL="$KNN_BINARY_DIR/tests/serve/make_model"
B=$KNN_S3_BUCKET
P=$KNN_S3_PREFIX
fail() { echo "FAIL: $*" >&2; exit 1; }

# A small model (make_model, from numpy rows) and one CSV input object.
"${KNN_PYTHON:-/usr/bin/python3}" - "$work" <<'PY'
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(5)
x = rng.normal(size=(40, 3)).astype("<f4")
x.tofile(d + "/x.f32")
(np.arange(40) % 4).astype("<f4").tofile(d + "/y.f32")
with open(d + "/in.csv", "w") as f:
    for row in rng.normal(size=(7, 3)):
        f.write(",".join("%.6f" % v for v in row) + "\n")
PY
mkdir -p "$work/model" "$work/local-in" "$work/local-out"
"$MAKE_MODEL" "$work/model" "$work/x.f32" "$work/y.f32" 3 3 classifier L2 faiss.Flat >/dev/null
cp "$work/in.csv" "$work/local-in/in.csv"
(cd "$work/model" && tar czf "$work/model.tar.gz" model_algo-1 model_algo-1.json model_algo-1.labels)
aws_local s3 cp --only-show-errors "$work/in.csv" "s3://$B/${P}in/in.csv"
aws_local s3 cp --only-show-errors "$work/model.tar.gz" "s3://$B/${P}model.tar.gz"
# The expected answers: the same transform, local to local.
"$K" transform --model "$work/model" --content-type text/csv --input "$work/local-in" --output "$work/local-out" \
    2>"$work/err" || { cat "$work/err" >&2; fail "local transform"; }

unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3

# 1. transform --endpoint-url (the environment has no endpoint).
"$K" transform --endpoint-url "$ENDPOINT" --model "$work/model" --content-type text/csv \
    --input "s3://$B/${P}in/" --output "s3://$B/${P}out1/" 2>"$work/err" || { cat "$work/err" >&2; fail "transform --endpoint-url"; }
awsl s3 cp --only-show-errors "s3://$B/${P}out1/in.csv.out" "$work/out1"
cmp -s "$work/out1" "$work/local-out/in.csv.out" || fail "transform --endpoint-url: answers differ from the local run"

# 2. transform --profile: the endpoint from the profile's endpoint_url, the keys from its credentials.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
printf '[profile knn-settings]\nregion = %s\nendpoint_url = %s\n' "$AWS_REGION" "$ENDPOINT" >"$work/config"
printf '[knn-settings]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$AK" "$SK" >"$work/credentials"
export AWS_CONFIG_FILE="$work/config" AWS_SHARED_CREDENTIALS_FILE="$work/credentials"
"$K" transform --profile knn-settings --model "s3://$B/${P}model.tar.gz" --content-type text/csv \
    --input "s3://$B/${P}in/" --output "s3://$B/${P}out2/" 2>"$work/err" || { cat "$work/err" >&2; fail "transform --profile"; }
awsl s3 cp --only-show-errors "s3://$B/${P}out2/in.csv.out" "$work/out2"
cmp -s "$work/out2" "$work/local-out/in.csv.out" || fail "transform --profile: answers differ from the local run"
# Without --profile (no keys in the environment, no default profile): refused, and says why.
set +e
"$K" transform --model "$work/model" --content-type text/csv --input "s3://$B/${P}in/" --output "s3://$B/${P}out3/" \
    --endpoint-url "$ENDPOINT" 2>"$work/err"
rc=$?
set -e
[ "$rc" = 1 ] || { cat "$work/err" >&2; fail "transform without credentials: exit $rc"; }
grep -q "no AWS credentials found" "$work/err" || fail "no-credentials message: $(cat "$work/err")"

# 3. --region is used: a name that is not a region is refused.
set +e
"$K" transform --profile knn-settings --region "not a region" --model "$work/model" --content-type text/csv \
    --input "s3://$B/${P}in/" --output "s3://$B/${P}out4/" 2>"$work/err"
rc=$?
set -e
[ "$rc" = 1 ] && grep -q "region 'not a region' is not a valid AWS region name" "$work/err" ||
    { cat "$work/err" >&2; fail "transform --region"; }

# 4. serve --model s3://... --profile: the model comes down through the profile's endpoint and keys.
"$K" serve --profile knn-settings --model "s3://$B/${P}model.tar.gz" --port 0 --host 127.0.0.1 2>"$work/serve.err" &
serve_pid=$!
port=
for _ in $(seq 1 100); do
    port=$(sed -n 's/.*ready on port \([0-9]*\).*/\1/p' "$work/serve.err" | head -1)
    [ -n "$port" ] && break
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 0.1
done
[ -n "$port" ] || { cat "$work/serve.err" >&2; fail "serve --profile did not start"; }
got=$(curl -s --max-time 5 -H 'Content-Type: text/csv' -H 'Accept: application/jsonlines' \
    --data-binary @"$work/in.csv" "http://127.0.0.1:$port/invocations")
[ "$got" = "$(cat "$work/local-out/in.csv.out")" ] || fail "serve --profile answers '$got', the local transform '$(cat "$work/local-out/in.csv.out")'"
kill "$serve_pid"
wait "$serve_pid" 2>/dev/null || true
serve_pid=
echo "ok"
