"""Check the deployment files of docs/ that cannot be run here (no Docker engine, no GitHub runner,
no internet): the Dockerfile, the MinIO compose file and the GitHub Actions workflow. Check what
can be checked, and run what they run, against the local S3 server instead of MinIO.

    check_deploy_files.py               static checks, then the compose and workflow commands
    check_deploy_files.py --build       the Dockerfile's build stage: its cmake commands on a
                                        folder holding exactly the files it COPYs

Environment: KNN_SOURCE_DIR, KNN_BINARY_DIR, KNN_RUNNER (ctest), the s3_server fixture's env file.
"""
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import yaml

SRC = os.environ["KNN_SOURCE_DIR"]
BIN = os.environ["KNN_BINARY_DIR"]
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)


def dockerfile():
    """Instructions of docs/sagemaker/Dockerfile as (stage, keyword, argument) with continuations joined."""
    text = open(os.path.join(SRC, "docs", "sagemaker", "Dockerfile")).read()
    out, stage, current = [], -1, ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if line.endswith("\\"):
            continue
        keyword, _, arg = current.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        out.append((stage, keyword.upper(), arg.strip()))
        current = ""
    return text, out


def apt_packages(run_arg):
    m = re.search(r"apt-get install (.*?)(&&|$)", run_arg)
    return {w for w in m.group(1).split() if not w.startswith("-")} if m else set()


def debian_packages(section):
    """Packages of one '# section' of scripts/debian-packages."""
    pkgs, inside = set(), False
    for line in open(os.path.join(SRC, "scripts", "debian-packages")):
        if line.startswith("# "):
            inside = line[2:].strip().startswith(section)
            continue
        name = line.split("#")[0].strip()
        if inside and name:
            pkgs.add(name)
    return pkgs


def build_commands(instructions):
    return [arg for stage, kw, arg in instructions if stage == 0 and kw == "RUN" and arg.startswith("cmake ")]


def runtime_packages_needed(binary):
    """Debian packages holding the shared libraries the binary links directly (readelf NEEDED)."""
    needed = re.findall(r"\(NEEDED\).*\[(.*)\]", subprocess.run(["readelf", "-d", binary], capture_output=True,
                                                                  text=True, check=True).stdout)
    paths = {}
    for line in subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "=>":
            paths[parts[0]] = parts[2]
        elif parts and parts[0].startswith("/"):  # the dynamic loader: "/lib64/ld-linux-x86-64.so.2 (0x...)"
            paths[os.path.basename(parts[0])] = parts[0]
    pkgs = {}
    for lib in needed:
        path = paths.get(lib)
        owner = None
        for candidate in filter(None, [path, path and os.path.realpath(path)]):
            r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
            if r.returncode == 0:
                owner = r.stdout.split(":")[0]
                break
        pkgs[lib] = owner
    return pkgs


def check_dockerfile():
    text, ins = dockerfile()
    check("NOT BUILT OR RUN" in text, "Dockerfile: its header says it is not built or run here")
    copies = [arg for stage, kw, arg in ins if kw == "COPY" and not arg.startswith("--from")]
    for arg in copies:
        for source in arg.split()[:-1]:
            check(os.path.exists(os.path.join(SRC, source)), f"Dockerfile: COPY source {source} exists")
    build = set().union(*[apt_packages(a) for s, k, a in ins if s == 0 and k == "RUN"])
    runtime = set().union(*[apt_packages(a) for s, k, a in ins if s == 1 and k == "RUN"])
    for pkg in sorted(debian_packages("libraries")):
        check(pkg in build, f"Dockerfile: the build stage installs {pkg} (scripts/debian-packages, libraries)")
    for pkg in ("build-essential", "cmake", "pkg-config"):
        check(pkg in build, f"Dockerfile: the build stage installs {pkg}")
    for lib, pkg in runtime_packages_needed(os.environ["KNN_RUNNER"]).items():
        check(pkg is not None and (pkg in runtime or pkg == "libc6"),
              f"Dockerfile: the runtime stage installs {pkg}, which holds {lib} (knn-runner needs it)")
    check(("1", "ENTRYPOINT", '["knn-runner"]') in {(str(s), k, a) for s, k, a in ins},
          "Dockerfile: ENTRYPOINT [\"knn-runner\"] in exec form (SageMaker runs IMAGE train / IMAGE serve)")
    check(any(k == "EXPOSE" and a == "8080" for s, k, a in ins), "Dockerfile: EXPOSE 8080")
    copied = [a for s, k, a in ins if s == 1 and k == "COPY" and a.startswith("--from=build")]
    check(copied == ["--from=build /src/build/runner/knn-runner /usr/local/bin/knn-runner"],
          "Dockerfile: the image gets the binary the build stage made")
    cmds = build_commands(ins)
    check(len(cmds) == 2 and "-DKNN_BUILD_TESTS=OFF" in cmds[0] and "--target knn-runner" in cmds[1],
          "Dockerfile: the build stage configures without tests and builds knn-runner")
    return ins


def s3_env():
    env = dict(os.environ)
    for line in open(os.path.join(BIN, "s3-local", "env")):
        if "=" in line and not line.startswith("#"):
            k, v = line.rstrip("\n").split("=", 1)
            env[k] = v
    return env


def run(cmd, env, cwd=SRC, what=None):
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, f"{what or ' '.join(cmd)} (exit {r.returncode})")
    if r.returncode != 0:
        print(r.stdout[-2000:], r.stderr[-2000:])
    return r


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_compose(ins):
    path = os.path.join(SRC, "docs", "minio", "docker-compose.yml")
    text = open(path).read()
    check("NOT RUN" in text, "compose: its header says it is not run here")
    doc = yaml.safe_load(text)
    services = doc["services"]
    check(set(services) == {"minio", "create-bucket", "upload", "train", "serve"}, "compose: the five services")
    check(services["minio"]["image"].startswith("minio/minio"), "compose: MinIO's image")
    check(services["minio"]["command"][:2] == ["server", "/data"], "compose: MinIO started with server /data")
    here = os.path.dirname(path)
    env = s3_env()
    bucket = env["KNN_S3_BUCKET"]
    prefix = f"deploy-files-{int(time.time())}-{os.getpid()}"
    scratch = os.path.join(BIN, "tests", "docs", "deploy-files")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)

    def localize(word, volumes):
        for host, container in volumes:
            if word == container or word.startswith(container + "/"):
                local = os.path.normpath(os.path.join(here, host)) + word[len(container):]
                if local.endswith(".json"):  # a manifest: point its URIs at our prefix
                    data = open(local).read().replace("s3://knn-test/", f"s3://{bucket}/{prefix}/")
                    local = os.path.join(scratch, os.path.basename(local))
                    open(local, "w").write(data)
                return local
        return word.replace("s3://knn-test/", f"s3://{bucket}/{prefix}/")

    for name in ("upload", "train", "serve"):
        svc = services[name]
        check(svc["image"] == "knn-runner", f"compose: {name} runs the knn-runner image")
        context = os.path.normpath(os.path.join(here, svc["build"]["context"]))
        check(context == os.path.normpath(SRC) and os.path.exists(os.path.join(context, svc["build"]["dockerfile"])),
              f"compose: {name} is built from docs/sagemaker/Dockerfile with the repository as context")
        for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
            check(key in svc["environment"], f"compose: {name} sets {key}")
        volumes = []
        for v in svc.get("volumes", []):
            host, container = v.split(":")[:2]
            check(os.path.exists(os.path.join(here, host)), f"compose: {name}'s volume {host} exists")
            volumes.append((host, container))
        args = [localize(w, volumes) for w in svc["command"]]
        if name != "serve":
            run([os.environ["KNN_RUNNER"]] + args, env, what=f"compose {name}: knn-runner {' '.join(svc['command'])}")
            continue
        port = free_port()
        log = open(os.path.join(scratch, "serve.log"), "w")
        proc = subprocess.Popen([os.environ["KNN_RUNNER"]] + args + ["--port", str(port), "--host", "127.0.0.1"],
                                env=env, stdout=log, stderr=log)
        try:
            ready = False
            for _ in range(300):
                if "ready on port" in open(os.path.join(scratch, "serve.log")).read():
                    ready = True
                    break
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
            check(ready, f"compose serve: knn-runner {' '.join(svc['command'])} gets ready")
            if ready:
                # docs/minio.md's request: the first wine, features only.
                row = open(os.path.join(SRC, "examples", "data", "wine.csv")).readline().split(",", 1)[1]
                req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=row.encode(),
                                             headers={"Content-Type": "text/csv", "Accept": "application/json"})
                answer = json.loads(urllib.request.urlopen(req, timeout=30).read())
                check(answer == {"predictions": [{"predicted_label": 0.0}]},
                      f"compose serve: the first wine is class 0 ({answer})")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    run([os.environ["KNN_RUNNER"], "s3", "rm", "--recursive", "--quiet", f"s3://{bucket}/{prefix}/"], env,
        what="clean up the compose run's objects")


def check_workflow(ins):
    path = os.path.join(SRC, "docs", "ci", "github-actions.yml")
    text = open(path).read()
    check("NOT RUN" in text, "workflow: its header says it is not run here")
    doc = yaml.safe_load(text)
    job = doc["jobs"]["smoke"]
    check(job["services"]["minio"]["image"].startswith("minio/minio"), "workflow: MinIO as a service container")
    check(job.get("container") == "debian:12", "workflow: the job runs in Debian 12")
    env_keys = set(job["env"])
    check({"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "KNN_S3_BUCKET"} <= env_keys,
          "workflow: the job's environment points knn-runner at MinIO")
    runs = [s["run"] for s in job["steps"] if "run" in s]
    install = [r for r in runs if "apt-get install" in r]
    build_pkgs = set().union(*[apt_packages(a) for s, k, a in ins if s == 0 and k == "RUN"])
    check(len(install) == 1 and build_pkgs <= apt_packages(install[0].replace("\\\n", " ")),
          "workflow: installs the Dockerfile's build packages")
    build = [r for r in runs if r.strip().startswith("cmake")]
    check(len(build) == 1 and [l.strip() for l in build[0].strip().splitlines()] == build_commands(ins),
          "workflow: builds with the Dockerfile's cmake commands")
    scripts = [r.strip() for r in runs if r.strip().startswith("docs/ci/")]
    check(scripts == ["docs/ci/create-bucket.sh", "docs/ci/smoke.sh"], f"workflow: runs {scripts}")
    env = s3_env()
    env.update({"KNN_S3_BUCKET": f"knn-ci-{os.getpid()}", "KNN_SMOKE_PORT": "0",
                "KNN_CI_PREFIX": f"ci-{int(time.time())}"})
    for script in scripts:
        check(os.access(os.path.join(SRC, script), os.X_OK), f"workflow: {script} is executable")
        r = run([os.path.join(SRC, script)], env, what=f"workflow step: {script} (against the local S3 server)")
        print("\n".join("        " + l for l in r.stdout.splitlines()[-4:]))
    run([os.environ["KNN_RUNNER"], "s3", "rm", "--recursive", "--quiet", f"s3://{env['KNN_S3_BUCKET']}/"], env,
        what="clean up the workflow run's objects")


def s_build_folders(folder, names):
    """copytree's ignore: build folders (build/, build-asan/) that a developer's tree may hold."""
    return [n for n in names if n.startswith("build") and os.path.isdir(os.path.join(folder, n))]


def build_stage():
    """Run the Dockerfile's build-stage cmake commands on a copy of exactly what it COPYs."""
    _, ins = dockerfile()
    work = os.path.join(BIN, "tests", "docs", "dockerfile-build", "src")
    shutil.rmtree(os.path.dirname(work), ignore_errors=True)
    os.makedirs(work)
    for stage, kw, arg in ins:
        if stage == 0 and kw == "COPY":
            *sources, dest = arg.split()
            for source in sources:
                into_folder = dest in (".", "./") or dest.endswith("/")
                target = os.path.join(work, dest, os.path.basename(source)) if into_folder else os.path.join(work, dest)
                if os.path.isdir(os.path.join(SRC, source)):
                    shutil.copytree(os.path.join(SRC, source), target, ignore=s_build_folders)
                else:
                    shutil.copy(os.path.join(SRC, source), target)
    for cmd in build_commands(ins):
        cmd = cmd.replace('-j"$(nproc)"', "-j2")
        r = subprocess.run(["bash", "-c", cmd], cwd=work, capture_output=True, text=True, timeout=1200)
        check(r.returncode == 0, f"Dockerfile build stage: {cmd}")
        if r.returncode:
            print(r.stdout[-3000:], r.stderr[-3000:])
            return
    binary = os.path.join(work, "build", "runner", "knn-runner")
    r = subprocess.run([binary, "--help"], capture_output=True, text=True)
    check(r.returncode == 0 and "train" in r.stdout and "serve" in r.stdout,
          "Dockerfile build stage: the binary runs (knn-runner --help lists train and serve)")
    shutil.rmtree(os.path.dirname(work), ignore_errors=True)


def main():
    if "--build" in sys.argv:
        build_stage()
    else:
        ins = check_dockerfile()
        check_compose(ins)
        check_workflow(ins)
    if failures:
        sys.exit(f"check_deploy_files: {len(failures)} check(s) failed")
    print("check_deploy_files: all checks passed")


if __name__ == "__main__":
    main()
