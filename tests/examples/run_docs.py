"""Run the shell blocks of a documentation page as written, and check the outputs it shows.

    run_docs.py docs/PAGE.md [--capture]

Conventions of the pages (invisible once rendered):
  ```sh blocks           run in order, in one bash session, from a scratch folder that looks like
                         the repository's top folder (examples/, scripts/, docs/ link to the
                         sources; build/runner/knn-runner is the binary under test)
  <!-- not run: WHY -->  on the line before a ```sh block: not run (WHY says what stands in)
  <!-- fails -->         on the line before a ```sh block: it must exit with a non-zero status
  ```json after a run block: the block's output must be this JSON (one document, or JSON Lines),
                         numbers equal to 1e-4 relative
  ```text after a run block: every line of it must appear in the block's output (stdout and
                         stderr together); "..." inside a line stands for any text, a line
                         "..." alone for any lines

A command failing in a run block (outside `if`, `||`, ...) fails the page. The environment is the
s3_server fixture's (AWS_ENDPOINT_URL, keys, KNN_S3_BUCKET); `s3://knn-test/` (the bucket of
scripts/s3-local) is moved under a prefix of its own, so reruns against a reused server start
clean; port 8080 is replaced by a free port. --capture prints every block's output instead of
checking it (to write a page).
"""
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time

FENCE = re.compile(r"^```(\S*)\s*$")


def parse(path):
    """[(info, text, marker)] for every fenced block, marker = the HTML comment line before it."""
    blocks, lines, i = [], open(path).read().splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        marker = lines[j].strip() if j >= 0 and lines[j].strip().startswith("<!--") else ""
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        blocks.append((m.group(1), "\n".join(body) + "\n", marker, i))
        i += 1
    return blocks


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def close(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    return a == b


def as_json(text):
    try:
        return [json.loads(text)]
    except ValueError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def main():
    page = sys.argv[1]
    capture = "--capture" in sys.argv
    src, bindir = os.environ["KNN_SOURCE_DIR"], os.environ["KNN_BINARY_DIR"]
    name = os.path.splitext(os.path.basename(page))[0]
    scratch = os.path.join(bindir, "tests", "docs", name)
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(os.path.join(scratch, "build", "runner"))
    os.makedirs(os.path.join(scratch, ".out"))
    for d in ("examples", "scripts", "docs", "runner", "cmake", "common", "protobuf-recordio", "s3", "algorithms",
              "CMakeLists.txt"):
        os.symlink(os.path.join(src, d), os.path.join(scratch, d))
    os.symlink(os.environ["KNN_RUNNER"], os.path.join(scratch, "build", "runner", "knn-runner"))

    env = dict(os.environ)
    env_file = os.path.join(bindir, "s3-local", "env")
    if os.path.exists(env_file):
        for line in open(env_file):
            if "=" in line and not line.startswith("#"):
                k, v = line.rstrip("\n").split("=", 1)
                env[k] = v
    bucket = env.get("KNN_S3_BUCKET", "knn-test")
    prefix = f"docs-{name}-{int(time.time())}-{os.getpid()}"
    port = str(free_port())

    blocks = parse(os.path.join(src, page))
    runs = []  # (index in blocks, expect_fail, expected (info, text) or None)
    for n, (info, text, marker, line) in enumerate(blocks):
        if info != "sh" or marker.startswith("<!-- not run"):
            continue
        expected = None
        if n + 1 < len(blocks) and blocks[n + 1][0] in ("json", "text") and not blocks[n + 1][2]:
            expected = blocks[n + 1][:2]
        runs.append((n, marker == "<!-- fails -->", expected))

    def localize(text):
        return text.replace("s3://knn-test/", f"s3://{bucket}/{prefix}/").replace("8080", port)

    out = os.path.join(scratch, ".out")
    script = ["set -E", f"trap 'echo \"$BLOCK: $BASH_COMMAND\" >>{out}/errors' ERR"]
    for r, (n, fails, _) in enumerate(runs):
        text = localize(blocks[n][1])
        if fails:
            script.append(f"BLOCK=expected-failure-{r}")
        else:
            script.append(f"BLOCK={r}")
        script.append("{\n" + text + f"}} >{out}/{r}.out 2>&1\necho $? >{out}/{r}.rc")
    script.append("BLOCK=end\nkill $(jobs -p) 2>/dev/null || true\nwait || true")
    with open(os.path.join(out, "script.sh"), "w") as f:
        f.write("\n".join(script) + "\n")
    subprocess.run(["bash", os.path.join(out, "script.sh")], cwd=scratch, env=env, timeout=600,
                   stdin=subprocess.DEVNULL)

    errors = open(os.path.join(out, "errors")).read().splitlines() if os.path.exists(os.path.join(out, "errors")) else []
    failures = 0
    for r, (n, fails, expected) in enumerate(runs):
        line = blocks[n][3]
        try:
            output = open(os.path.join(out, f"{r}.out")).read()
            rc = int(open(os.path.join(out, f"{r}.rc")).read())
        except (OSError, ValueError):
            output, rc = "", None
        if capture:
            print(f"---- block at line {line} (exit {rc}) ----\n{output}", end="" if output.endswith("\n") else "\n")
            continue
        problems = []
        if rc is None:
            problems.append("did not run")
        elif fails and rc == 0:
            problems.append("exited 0, the page says it fails")
        elif not fails:
            errs = [e for e in errors if e.split(":", 1)[0] == str(r)]
            if errs or rc != 0:
                problems.append(f"exit {rc}; failed commands: {errs}")
        if expected and rc is not None:
            info, text = expected[0], localize(expected[1])
            if info == "json":
                try:
                    if not close(as_json(output), as_json(text)):
                        problems.append("the output is not the JSON the page shows")
                except ValueError as e:
                    problems.append(f"the output is not JSON ({e})")
            else:
                missing = [l for l in text.splitlines() if l.strip() and l.strip() != "..." and not re.search(
                    ".*?".join(re.escape(part) for part in l.split("...")), output)]
                if missing:
                    problems.append(f"lines of the page missing from the output: {missing}")
        status = "FAIL" if problems else "ok  "
        print(f"{status}  {page}:{line}: {blocks[n][1].splitlines()[0][:90]}", flush=True)
        for p in problems:
            failures += 1
            print(f"        {p}")
        if problems:
            print("        output:\n" + "\n".join("          " + l for l in output.splitlines()[-30:]))
    if capture:
        return
    if not runs:
        sys.exit(f"run_docs: {page} has no block to run")
    if failures:
        sys.exit(f"run_docs: {page}: {failures} problem(s)")
    print(f"run_docs: {page}: {len(runs)} block(s) ran as written")


if __name__ == "__main__":
    main()
