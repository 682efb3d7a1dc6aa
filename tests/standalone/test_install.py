#!/usr/bin/python3
"""`cmake --install` into a temporary prefix gives a knn-runner that works with no source or build
tree around: the binary holds none of their paths, runs a file:// training job from another
folder, prints its version; the man page (made from the --help texts) and the bash completion are
installed and work."""
import gzip
import os
import shutil
import subprocess
import tempfile

from installlib import check, check_no_build_paths, check_version, clean_env, run_small_job

build = os.environ["KNN_BINARY_DIR"]
version = os.environ["KNN_VERSION"]

with tempfile.TemporaryDirectory(prefix="knn-install-") as tmp:
    prefix = os.path.join(tmp, "prefix")
    p = subprocess.run(["cmake", "--install", build, "--prefix", prefix], capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, f"cmake --install failed: {p.stdout[-1500:]}{p.stderr[-1500:]}")
    binary = os.path.join(prefix, "bin", "knn-runner")
    check(os.access(binary, os.X_OK), f"no executable {binary}")
    check_no_build_paths(binary)
    check_version(binary, version)

    work = os.path.join(tmp, "elsewhere")
    os.makedirs(work)
    run_small_job(binary, work)

    # The man page: every command's --help, as the installed binary prints it, renders in man(1).
    page = os.path.join(prefix, "share", "man", "man1", "knn-runner.1.gz")
    check(os.path.isfile(page), f"no man page {page}")
    with gzip.open(page, "rt") as f:
        roff = f.read()
    check(roff.startswith(".TH KNN-RUNNER 1 ") and f'"knn-runner {version}"' in roff, "man page header")
    check(shutil.which("man") is not None, "man(1) is missing: install man-db (scripts/debian-packages)")
    env = dict(clean_env(), MANWIDTH="200")
    text = subprocess.run(["man", "-l", page], capture_output=True, text=True, env=env, timeout=60).stdout
    for command in ("train", "serve", "transform", "recordio", "s3"):
        usage = subprocess.run([binary, command, "--help"], capture_output=True, text=True, env=clean_env(),
                               timeout=30).stdout.splitlines()[0].split()
        check(" ".join(usage) in " ".join(text.split()), f"man page lacks the usage line of '{command}'")
    check("--manifest" in text and "--max-payload-mb" in text, "man page lacks the options")

    # The bash completion: sourced, it completes commands and a command's options from --help.
    completion = os.path.join(prefix, "share", "bash-completion", "completions", "knn-runner")
    check(os.path.isfile(completion), f"no bash completion {completion}")
    script = f'''. "{completion}"
t() {{ COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _knn_runner; echo "${{COMPREPLY[*]}}"; }}
t knn-runner tr
t knn-runner serve --max-pay
t knn-runner s3 ""
'''
    env = dict(clean_env(), PATH=os.path.dirname(binary) + ":/usr/bin:/bin")
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=work, env=env, timeout=60)
    got = p.stdout.splitlines()
    check(p.returncode == 0 and got == ["train transform", "--max-payload-mb", "cp ls rm"],
          f"bash completion gave {got} (stderr {p.stderr.strip()})")
print("installed knn-runner: no build paths, file:// job from another folder, man page, completion: ok")
