#!/usr/bin/python3
"""`cpack -G DEB` builds knn-runner_<version>_<arch>.deb: dpkg-deb finds the binary, the man page and
the bash completion in it, and a Depends: line that names the Debian package of every shared
library the packaged binary links (looked up here with readelf, ldd and dpkg -S, independently of
dpkg-shlibdeps). The packaged binary, unpacked, prints its version and runs a file:// job."""
import os
import re
import subprocess
import tempfile

from installlib import check, check_no_build_paths, check_version, run_small_job


def out(*cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=kw.get("timeout", 60)).stdout


def depends_names(field):
    """Package names of a Depends: value, alternatives included ('a (>= 1) | b' -> {a, b})."""
    return {alt.strip().split()[0].split(":")[0] for dep in field.split(",") for alt in dep.split("|") if alt.strip()}


def satisfies(owner, depends):
    """Does the Depends set pull in `owner`? Named directly, or through a package that depends on it or
    that it provides (libopenblas0 depends on one of its flavours, e.g. libopenblas0-openmp)."""
    if owner in depends:
        return True
    provides = out("dpkg-query", "-W", "-f", "${Provides}", owner)
    if depends & depends_names(provides):
        return True
    for dep in depends:
        # An installed package's Depends from dpkg; a virtual or meta package that is not installed
        # (libopenblas0) from the package lists.
        info = subprocess.run(["dpkg-query", "-W", "-f", "${Depends}", dep], capture_output=True, text=True)
        text = info.stdout if info.returncode == 0 else ""
        if not text:
            show = subprocess.run(["apt-cache", "show", "--no-all-versions", dep], capture_output=True, text=True)
            text = ",".join(l.split(":", 1)[1] for l in show.stdout.splitlines() if l.startswith(("Depends:", "Pre-Depends:")))
        if owner in depends_names(text):
            return True
    return False


build = os.environ["KNN_BINARY_DIR"]
version = os.environ["KNN_VERSION"]
arch = out("dpkg", "--print-architecture").strip()

with tempfile.TemporaryDirectory(prefix="knn-deb-") as tmp:
    p = subprocess.run(["cpack", "-G", "DEB", "--config", os.path.join(build, "CPackConfig.cmake"), "-B", tmp],
                       cwd=tmp, capture_output=True, text=True, timeout=900)
    check(p.returncode == 0, f"cpack -G DEB failed: {p.stdout[-2000:]}{p.stderr[-2000:]}")
    deb = os.path.join(tmp, f"knn-runner_{version}_{arch}.deb")
    check(os.path.isfile(deb), f"no {os.path.basename(deb)} in {sorted(os.listdir(tmp))}")

    listing = out("dpkg-deb", "-c", deb)
    for path in ("./usr/bin/knn-runner", "./usr/share/man/man1/knn-runner.1.gz",
                 "./usr/share/bash-completion/completions/knn-runner"):
        check(re.search(r"\s" + re.escape(path) + r"$", listing, re.M) is not None, f"{path} is not in the package")
    check(out("dpkg-deb", "-f", deb, "Package").strip() == "knn-runner", "Package: is not knn-runner")
    check(out("dpkg-deb", "-f", deb, "Version").strip() == version, "Version: is not the project version")
    check(out("dpkg-deb", "-f", deb, "Architecture").strip() == arch, "Architecture: is not this machine's")
    depends_field = out("dpkg-deb", "-f", deb, "Depends").strip()
    depends = depends_names(depends_field)
    check(depends, "the package has no Depends:")

    root = os.path.join(tmp, "root")
    out("dpkg-deb", "-x", deb, root)
    binary = os.path.join(root, "usr", "bin", "knn-runner")
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out("readelf", "-d", binary))
    check(needed, "readelf finds no NEEDED libraries")
    resolved = dict(re.findall(r"^\s*(\S+) => (/\S+)", out("ldd", binary), re.M))
    for soname in needed:
        path = resolved.get(soname) or ("/lib64/" + soname if soname.startswith("ld-linux") else None)
        check(path is not None, f"ldd does not resolve {soname}")
        real = os.path.realpath(path)
        owner = subprocess.run(["dpkg", "-S", real], capture_output=True, text=True)
        if owner.returncode != 0:  # e.g. /lib vs /usr/lib after the usr merge
            owner = subprocess.run(["dpkg", "-S", real.replace("/usr/lib/", "/lib/", 1)], capture_output=True,
                                   text=True)
        check(owner.returncode == 0, f"dpkg -S finds no package owning {real} ({soname})")
        package = owner.stdout.split(":")[0]
        check(satisfies(package, depends), f"Depends: {depends_field!r} does not pull in {package} ({soname})")
        print(f"{soname}: {package} - in Depends")

    check_no_build_paths(binary)
    check_version(binary, version)
    work = os.path.join(tmp, "elsewhere")
    os.makedirs(work)
    run_small_job(binary, work)
print(f"knn-runner_{version}_{arch}.deb: contents, Depends from the linked libraries, a file:// job: ok")
