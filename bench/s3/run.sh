#!/usr/bin/env bash
# GET and PUT of one large object (256 MiB by default) against the local Ceph RGW, side by side in
# one run: plain curl (--aws-sigv4), awscli (/usr/bin/aws s3 cp) and knn-runner s3 cp, interleaved
# over a few repetitions (the order rotates each time). Prints each run's seconds, the median
# throughput of each tool, and our ratios to curl and to awscli.
#
#   bench/s3/run.sh [--reps 5] [--size-mib 256] [--runner build/runner/knn-runner] [--env FILE]
#
# --env FILE uses a running server (scripts/s3-local start, then its DIR/env); otherwise the script
# starts its own in a temporary folder (about 17 s, ~1.5 GB of RAM with the object) and stops it.
# Files live in /dev/shm so that the disk is not measured. The machine's 2 cores are shared by the
# server and the clients, so these are ratios on this machine, not S3's speed.
#
# What each client does per byte: curl sends UNSIGNED-PAYLOAD and no Content-MD5 (nothing hashed);
# awscli hashes each part twice (SHA-256 over http:// and Content-MD5; 8 MiB parts, 10 threads),
# knn-runner once (a signed Content-MD5 per part; 8 MiB parts, 8 in flight). For GET, curl writes
# the file sequentially, awscli and knn-runner with parallel ranged reads (8 MiB; 10 threads and 8
# in flight).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
reps=5
size_mib=256
runner=$root/build/runner/knn-runner
env_file=
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) reps=$2; shift 2 ;;
        --size-mib) size_mib=$2; shift 2 ;;
        --runner) runner=$2; shift 2 ;;
        --env) env_file=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
[ -x "$runner" ] || { echo "no knn-runner at $runner (build it, or pass --runner)" >&2; exit 1; }
shm=/dev/shm
[ -d "$shm" ] && [ -w "$shm" ] || shm=${TMPDIR:-/tmp}
work=$(mktemp -d "$shm/knn-bench-s3.XXXXXX")
server_dir=
cleanup() {
    [ -n "$server_dir" ] && "$root/scripts/s3-local" stop --dir "$server_dir" >/dev/null 2>&1
    rm -rf "$work" "$server_dir"
}
trap cleanup EXIT
if [ -z "$env_file" ]; then
    server_dir=$(mktemp -d /tmp/knn-bench-rgw.XXXXXX)
    "$root/scripts/s3-local" start --dir "$server_dir" --mem $((4 * 1024 * 1024 * 1024)) >/dev/null
    env_file=$server_dir/env
fi
set -a
. "$env_file"
set +a
printf '[default]\nregion = %s\ns3 =\n    addressing_style = path\n' "$AWS_REGION" >"$work/aws-config"
export AWS_CONFIG_FILE=$work/aws-config AWS_SHARED_CREDENTIALS_FILE=$work/none AWS_PAGER=""
unset AWS_PROFILE
B=$KNN_S3_BUCKET
P=bench/s3-$$
src=$work/object.bin
out=$work/download.bin
head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$src"
bytes=$(stat -c %s "$src")

curl_s3() { curl -sS --fail -m 600 --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"; }

put() { # TOOL
    case "$1" in
        curl) curl_s3 -o /dev/null -T "$src" "$AWS_ENDPOINT_URL/$B/$P/put-curl" ;;
        curl+md5) # the same integrity as ours: Content-MD5 computed first, then one PUT
            local md5
            md5=$(/usr/bin/python3 -c 'import base64, hashlib, sys
h = hashlib.md5()
with open(sys.argv[1], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print(base64.b64encode(h.digest()).decode())' "$src")
            curl_s3 -o /dev/null -H "Content-MD5: $md5" -T "$src" "$AWS_ENDPOINT_URL/$B/$P/put-curl-md5" ;;
        aws) timeout 600 /usr/bin/aws --endpoint-url "$AWS_ENDPOINT_URL" s3 cp --only-show-errors "$src" "s3://$B/$P/put-aws" ;;
        knn) timeout 600 "$runner" s3 cp --quiet "$src" "s3://$B/$P/put-knn" ;;
    esac
}
get() { # TOOL: everyone reads the same object (uploaded once by curl, a single PUT)
    rm -f "$out"
    case "$1" in
        curl) curl_s3 -o "$out" "$AWS_ENDPOINT_URL/$B/$P/source" ;;
        aws) timeout 600 /usr/bin/aws --endpoint-url "$AWS_ENDPOINT_URL" s3 cp --only-show-errors "s3://$B/$P/source" "$out" ;;
        knn) timeout 600 "$runner" s3 cp --quiet "s3://$B/$P/source" "$out" ;;
    esac
}
seconds() { # CMD...: wall time of the command, in seconds
    local t0 t1
    t0=$(date +%s%N)
    "$@"
    t1=$(date +%s%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'
}

# Each repetition overwrites four 256 MiB objects; RGW frees the old data only when its garbage
# collector runs, and the memstore OSD holds everything in RAM. Run the collector now.
server_conf=$(dirname "$env_file")/ceph.conf
free_overwritten() {
    if [ -f "$server_conf" ]; then
        timeout 120 radosgw-admin -c "$server_conf" -n client.rgw.a gc process --include-all >/dev/null 2>&1 || true
    else
        sleep 25 # a server we do not know the folder of: give its collector (10 s period) time
    fi
}

curl_s3 -o /dev/null -T "$src" "$AWS_ENDPOINT_URL/$B/$P/source"
tools=(curl aws knn)
declare -A times
# curl+md5 runs too (PUT only), right after curl: what curl needs for the Content-MD5 we send.
echo "object: $size_mib MiB; $reps repetitions, interleaved; server $AWS_ENDPOINT_URL"
for ((r = 0; r < reps; r++)); do
    for ((i = 0; i < 3; i++)); do
        t=${tools[$(((i + r) % 3))]}
        times[put-$t]+="$(seconds put "$t") "
        [ "$t" = curl ] && times[put-curl+md5]+="$(seconds put curl+md5) "
        times[get-$t]+="$(seconds get "$t") "
        cmp -s "$src" "$out" || { echo "$t GET: the download differs from the object" >&2; exit 1; }
    done
    free_overwritten
done
for t in curl curl-md5 aws knn; do
    cmp -s <(curl_s3 "$AWS_ENDPOINT_URL/$B/$P/put-$t") "$src" || { echo "$t PUT: the object differs" >&2; exit 1; }
done
curl_s3 -X DELETE -o /dev/null "$AWS_ENDPOINT_URL/$B/$P/"{source,put-curl,put-curl-md5,put-aws,put-knn}

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.1f", b / 1048576 / s }'; }
printf '\n%-4s %-8s %-44s %8s %9s\n' op tool "seconds per run" median "MiB/s"
for op in put get; do
    for t in curl curl+md5 aws knn; do
        [ -n "${times[$op-$t]:-}" ] || continue
        m=$(echo "${times[$op-$t]}" | median)
        printf '%-4s %-8s %-44s %8s %9s\n' "$op" "$t" "${times[$op-$t]}" "$m" "$(mbps "$m")"
        eval "med_${op}_${t//[^a-z0-9]/_}=$m"
    done
done
echo
for op in put get; do
    c=med_${op}_curl a=med_${op}_aws k=med_${op}_knn
    printf '%s: knn-runner at %s%% of curl (target >= 90%%), %sx awscli (target >= 2x)\n' "$op" \
        "$(awk -v c="${!c}" -v k="${!k}" 'BEGIN { printf "%.0f", 100 * c / k }')" \
        "$(awk -v a="${!a}" -v k="${!k}" 'BEGIN { printf "%.2f", a / k }')"
done
printf 'put: knn-runner at %s%% of curl+md5 (the same integrity: Content-MD5 on the whole object)\n' \
    "$(awk -v c="$med_put_curl_md5" -v k="$med_put_knn" 'BEGIN { printf "%.0f", 100 * c / k }')"
