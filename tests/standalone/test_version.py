#!/usr/bin/python3
"""`knn-runner --version`: the project version, the git commit the binary was built from (as git
itself reports it; "unknown" outside a git checkout), and the BLAS library with its threading and
the Open MPI version, as dpkg says they are installed."""
import os
import re
import subprocess
import tempfile

from installlib import check

runner = os.environ["KNN_RUNNER"]
source = os.environ["KNN_SOURCE_DIR"]
version = os.environ["KNN_VERSION"]

out = subprocess.run([runner, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
lines = out.splitlines()
check(lines[0] == f"knn-runner {version}", f"first line {lines[0]!r}")
check(subprocess.run([runner, "version"], capture_output=True, text=True, timeout=30).stdout == out,
      "`knn-runner version` and `--version` differ")

# The commit, as git reports it now (the build refreshes it at every build).
want = "unknown"
if os.path.exists(os.path.join(source, ".git")):
    head = subprocess.run(["git", "-C", source, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        want = head.stdout.strip()
        dirty = subprocess.run(["git", "-C", source, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout
        if dirty.strip():
            want += "-dirty"
check(f"commit: {want}" in lines, f"expected 'commit: {want}' in {lines}")

# Outside git the build writes "unknown".
with tempfile.TemporaryDirectory() as tmp:
    header = os.path.join(tmp, "c.h")
    subprocess.run(["cmake", f"-DSRC={tmp}", f"-DOUT={header}", "-P",
                    os.path.join(source, "cmake", "KnnGitCommit.cmake")], check=True, capture_output=True)
    check('#define KNN_GIT_COMMIT "unknown"' in open(header).read(), "outside git the commit is not 'unknown'")

# BLAS: the OpenBLAS flavour dpkg has installed for the library the binary loads.
ldd = subprocess.run(["ldd", runner], capture_output=True, text=True, check=True).stdout
m = re.search(r"libopenblas\.so\.0 => (\S+)", ldd)
check(m is not None, "the binary does not load libopenblas.so.0")
owner = subprocess.run(["dpkg", "-S", os.path.realpath(m.group(1))], capture_output=True, text=True, check=True)
package = owner.stdout.split(":")[0]
upstream = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True,
                          check=True).stdout.split("+")[0].split("-")[0]
threading = {"openmp": "OpenMP", "pthread": "pthreads", "serial": "sequential"}[package.rsplit("-", 1)[-1]]
blas = [l for l in lines if l.strip().startswith("blas ")]
check(len(blas) == 1, f"no single 'blas' feature line in {lines}")
check(f"OpenBLAS {upstream}" in blas[0] and f"{threading} build" in blas[0],
      f"blas line {blas[0]!r}: expected OpenBLAS {upstream} and '{threading} build' ({package})")
check(any(l.strip().startswith("threads ") for l in lines), "no 'threads' feature line")

# Open MPI: the version of the libopenmpi package dpkg has installed, e.g. 4.1.4 of "4.1.4-3+b1".
mpi_version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "libopenmpi3"], capture_output=True,
                             text=True, check=True).stdout.split("-")[0]
mpi = [l for l in lines if l.strip().startswith("mpi ")]
check(len(mpi) == 1 and f"Open MPI {mpi_version}" in mpi[0], f"expected an 'mpi' line naming Open MPI {mpi_version}")
print(out, end="")
