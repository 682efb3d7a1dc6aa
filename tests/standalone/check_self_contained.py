#!/usr/bin/env python3
"""Fails if any file of the repository points outside it.

A fresh clone has nothing beside it, so no file may name the developers' side folder, its
environment variable, or an absolute path of our machines, and every relative Markdown link must
land on a file or folder inside the repository. The files are those `git ls-files` lists; in an
unpacked tarball without .git every regular file under the root is scanned instead (build trees,
recognised by their CMakeCache.txt, are skipped).

    check_self_contained.py [ROOT]        # exit 0: clean; 1: findings (one line each); 2: usage
    check_self_contained.py --self-test   # the checks find planted references, in both modes
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

# Written in pieces so that this file does not match itself.
SIDE = "sha" + "red"
FORBIDDEN = [
    (re.compile(r"\.\./+(?:\.\./+)*" + SIDE + r"\b"), "a path to the side folder beside the checkout"),
    (re.compile(r"KNN_" + SIDE.upper()), "the side folder's variable"),
    (re.compile(r"(?<![\w.~-])/" + "work" + r"/"), "an absolute path of the developers' machines"),
    (re.compile(r"(?<![\w.~-])/" + "tmp/knn-" + SIDE), "a developers' machine's shared server"),
]
MD_LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
SKIP_DIRS = {".git", "node_modules", "__pycache__"}
MAX_SCAN = 4 << 20  # larger files are data (fixtures), not text that could hold a path


def list_files(root):
    if os.path.isdir(os.path.join(root, ".git")) or os.path.isfile(os.path.join(root, ".git")):
        try:
            out = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                 check=True, capture_output=True).stdout
            return "git", sorted(p for p in out.decode("utf-8", "surrogateescape").split("\0") if p)
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"check_self_contained: git ls-files failed ({e}); scanning the tree", file=sys.stderr)
    files = []
    for d, dirs, names in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS
                         and not os.path.exists(os.path.join(d, x, "CMakeCache.txt")))
        for n in sorted(names):
            full = os.path.join(d, n)
            if os.path.isfile(full) and not os.path.islink(full):
                files.append(os.path.relpath(full, root))
    return "tree", files


def check_links(root, rel, text, findings):
    base = os.path.dirname(os.path.join(root, rel))
    real_root = os.path.realpath(root)
    for lineno, line in enumerate(text.splitlines(), 1):
        for m in MD_LINK.finditer(line):
            target = m.group(1)
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#") or target.startswith("<"):
                continue  # URL, mail, in-page anchor
            path = target.split("#", 1)[0]
            if not path:
                continue
            full = os.path.realpath(os.path.join(root if path.startswith("/") else base, path.lstrip("/")))
            if os.path.commonpath([full, real_root]) != real_root:
                findings.append(f"{rel}:{lineno}: link '{target}' leaves the repository")
            elif not os.path.exists(full):
                findings.append(f"{rel}:{lineno}: link '{target}' names nothing in the repository")


def scan(root):
    mode, files = list_files(root)
    findings = []
    for rel in files:
        full = os.path.join(root, rel)
        try:
            if not os.path.isfile(full) or os.path.getsize(full) > MAX_SCAN:
                continue
            with open(full, "rb") as f:
                data = f.read()
        except OSError as e:
            findings.append(f"{rel}: cannot read ({e.strerror})")
            continue
        if b"\0" in data[:8192]:
            continue  # binary
        text = data.decode("utf-8", "replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            for rx, what in FORBIDDEN:
                m = rx.search(line)
                if m:
                    findings.append(f"{rel}:{lineno}: '{m.group(0)}' is {what}")
        if rel.endswith(".md"):
            check_links(root, rel, text, findings)
    return mode, len(files), findings


def self_test():
    """Plant each kind of outside reference in a small tree and check that it is found."""
    planted = {
        "a.c": '#include "../' + SIDE + '/x.h"\n',
        "b.sh": "x=${KNN_" + SIDE.upper() + "_DIR}\n",
        "c.py": 'p = "/' + 'work/main/data"\n',
        "d.md": "[spec](../../outside/spec.md) and [gone](missing.md)\n",
    }
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in [("clean.md", "[self](clean.md) [web](https://example.com) .github/workflows/\n")] + list(planted.items()):
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        for mode in ("tree", "git"):
            if mode == "git":
                if not shutil.which("git"):
                    print("self-test: no git, git mode not checked")
                    continue
                subprocess.run(["git", "init", "-q", tmp], check=True)
            got_mode, _, findings = scan(tmp)
            found = {f.split(":", 1)[0] for f in findings}
            if got_mode != mode:
                print(f"self-test: expected {mode} mode, scanned in {got_mode} mode")
                ok = False
            for name in planted:
                if name not in found:
                    print(f"self-test ({mode}): planted reference in {name} not found")
                    ok = False
            if "clean.md" in found:
                print(f"self-test ({mode}): clean.md flagged: {findings}")
                ok = False
            if sum(1 for f in findings if f.startswith("d.md")) != 2:
                print(f"self-test ({mode}): d.md should give 2 findings: {findings}")
                ok = False
    print("self-test: " + ("every planted reference found" if ok else "FAILED"))
    return 0 if ok else 1


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) > 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = argv[1] if len(argv) == 2 else os.environ.get("KNN_SOURCE_DIR", ".")
    mode, count, findings = scan(root)
    for f in findings:
        print(f)
    print(f"check_self_contained: {count} files ({mode} mode), {len(findings)} reference(s) outside the repository")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
