#!/usr/bin/python3
"""Writes knn-runner(1) from the program's own --help texts, so the man page never drifts from them.

    make-manpage.py KNN_RUNNER OUT.1

Runs `KNN_RUNNER --help`, finds the commands it lists, runs `KNN_RUNNER <command> --help` for each,
and writes a roff page: NAME, SYNOPSIS, DESCRIPTION (the overview), COMMANDS (each command's help,
verbatim), VERSION, EXIT STATUS. The date comes from SOURCE_DATE_EPOCH when set (reproducible builds), else the
page has none. Run by the build (runner/CMakeLists.txt); the page is installed as man1/knn-runner.1.
"""
import os
import re
import subprocess
import sys
import time


def run(exe, *args):
    p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        sys.exit(f"make-manpage: '{' '.join([exe, *args])}' exited with {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def roff_text(line):
    """One line of verbatim text: backslashes escaped, a leading . or ' made literal."""
    line = line.replace("\\", "\\e")
    if line.startswith((".", "'")):
        line = "\\&" + line
    return line


def verbatim(text):
    return [".nf"] + [roff_text(l) for l in text.rstrip("\n").splitlines()] + [".fi"]


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    exe, out = argv[1], argv[2]
    overview = run(exe, "--help")
    version_block = run(exe, "--version")
    version = version_block.split("\n", 1)[0].split()[-1]
    commands = []
    in_list = False
    for line in overview.splitlines():
        if line.strip() == "commands:":
            in_list = True
            continue
        if in_list:
            m = re.match(r"^  (\S+)\s+(.*)$", line)
            if not m:
                break
            commands.append((m.group(1), m.group(2)))
    if not commands:
        sys.exit("make-manpage: no 'commands:' list in the --help text")

    date = ""
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        date = time.strftime("%Y-%m-%d", time.gmtime(int(os.environ["SOURCE_DATE_EPOCH"])))
    page = [f'.TH KNN-RUNNER 1 "{date}" "knn-runner {version}" "User Commands"',
            ".SH NAME",
            "knn-runner \\- SageMaker k-NN training jobs, endpoints and batch transforms outside SageMaker",
            ".SH SYNOPSIS",
            ".B knn-runner",
            ".I command",
            "[\\fIoptions\\fR]",
            ".br",
            ".B knn-runner",
            ".I command",
            ".B \\-\\-help",
            ".br",
            ".B knn-runner \\-\\-version",
            ".SH DESCRIPTION"]
    page += verbatim(overview)
    page.append(".SH COMMANDS")
    for name, summary in commands:
        page.append(f".SS {roff_text(name)}")
        page.append(roff_text(summary))
        if name != "version":
            page += [".PP"] + verbatim(run(exe, name, "--help"))
    page += [".SH VERSION", "\\fBknn-runner \\-\\-version\\fR prints the version, the git commit the binary was built "
             "from and the features built in (BLAS library and threading)."]
    page += [".SH EXIT STATUS", "0 on success, non-zero on failure; a training job's failure reason is printed on stderr "
             "(and written to output/failure under the /opt/ml contract)."]
    with open(out + ".tmp", "w") as f:
        f.write("\n".join(page) + "\n")
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main(sys.argv)
