#!/usr/bin/env bash
# The command line's help and usage errors, for every command `knn-runner --help` lists:
#  - `knn-runner CMD --help` exits 0 and prints, on stdout, an "examples:" section whose lines run
#    that command; `knn-runner help CMD` prints exactly the same;
#  - a usage error exits 2 with nothing on stdout and, on stderr, one style: what was wrong (naming
#    the command and the bad word), the command's usage line, and the pointer to its --help;
#  - README.md names every command, `version` included.
set -uo pipefail
runner=${KNN_RUNNER:?run through ctest}
src=${KNN_SOURCE_DIR:?run through ctest}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$runner" --help >"$tmp/top" || fail "knn-runner --help exits non-zero"
mapfile -t commands < <(sed -n '/^commands:/,/^$/p' "$tmp/top" | awk 'NF > 1 { print $1 }')
[ "${#commands[@]}" -ge 6 ] || fail "knn-runner --help lists ${#commands[@]} commands: ${commands[*]}"
grep -q '^examples:' "$tmp/top" || fail "knn-runner --help has no examples"

for cmd in "${commands[@]}"; do
    grep -q "knn-runner $cmd" "$src/README.md" || fail "README.md does not name 'knn-runner $cmd'"
    [ "$cmd" = version ] && continue
    "$runner" "$cmd" --help >"$tmp/$cmd.help" 2>"$tmp/$cmd.err"
    rc=$?
    [ $rc = 0 ] || fail "$cmd --help exits $rc"
    [ -s "$tmp/$cmd.err" ] && fail "$cmd --help writes to stderr: $(head -1 "$tmp/$cmd.err")"
    head -1 "$tmp/$cmd.help" | grep -q "^usage: knn-runner $cmd" || fail "$cmd --help does not start with its usage line"
    # the examples: the lines after "examples:" that start a command line run this command
    n=$(sed -n '/^examples:/,$p' "$tmp/$cmd.help" | grep -c "knn-runner $cmd ")
    [ "$n" -ge 2 ] || fail "$cmd --help has $n example(s) of 'knn-runner $cmd'"
    "$runner" help "$cmd" >"$tmp/$cmd.help2" 2>&1 || fail "knn-runner help $cmd exits non-zero"
    cmp -s "$tmp/$cmd.help" "$tmp/$cmd.help2" || fail "knn-runner help $cmd differs from $cmd --help"

    # A usage error: an option that does not exist (after the subcommand for s3 and recordio).
    case $cmd in
        s3) args=(s3 ls --no-such-option) ;;
        recordio) args=(recordio inspect --no-such-option) ;;
        *) args=("$cmd" --no-such-option) ;;
    esac
    "$runner" "${args[@]}" >"$tmp/$cmd.out" 2>"$tmp/$cmd.err"
    rc=$?
    [ $rc = 2 ] || fail "${args[*]}: exit $rc, not 2"
    [ -s "$tmp/$cmd.out" ] && fail "${args[*]}: a usage error writes to stdout"
    head -1 "$tmp/$cmd.err" | grep -q "^knn-runner $cmd: .*'--no-such-option'" ||
        fail "${args[*]}: first line does not say what was wrong: $(head -1 "$tmp/$cmd.err")"
    grep -q "^usage: knn-runner $cmd" "$tmp/$cmd.err" || fail "${args[*]}: no usage line on stderr"
    tail -1 "$tmp/$cmd.err" | grep -q "^Run 'knn-runner $cmd --help'" || fail "${args[*]}: no pointer to --help"
    [ "$(wc -l <"$tmp/$cmd.err")" -le 8 ] || fail "${args[*]}: the usage error is $(wc -l <"$tmp/$cmd.err") lines"
done

# An unknown command and `help` of one: the same shape, exit 2.
for args in "frobnicate" "help frobnicate"; do
    "$runner" $args >"$tmp/unknown.out" 2>"$tmp/unknown.err"
    rc=$?
    [ $rc = 2 ] || fail "knn-runner $args: exit $rc, not 2"
    head -1 "$tmp/unknown.err" | grep -q "unknown command 'frobnicate'" || fail "knn-runner $args: $(head -1 "$tmp/unknown.err")"
    tail -1 "$tmp/unknown.err" | grep -q -- "--help" || fail "knn-runner $args: no pointer to --help"
done
"$runner" version | grep -q '^knn-runner ' || fail "knn-runner version"

[ $fails = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "ok: ${#commands[@]} commands"
