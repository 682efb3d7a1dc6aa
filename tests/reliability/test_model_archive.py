"""Model loading never writes more than the model declares (issue 17).

    test_model_archive.py

A real model.tar.gz is made by `knn-runner train` (file:// output); its model_algo-1.json must
declare each member's size and SHA-256 as Python's tarfile and hashlib see them. Then crafted
archives (Python's tarfile, gzip) are loaded with `knn-runner query --model`, which unpacks like
`serve` and `transform`, under RLIMIT_FSIZE = the largest declared member: writing past a declared
size would kill it with SIGXFSZ instead of a clean error. Each must be refused with a message
naming the member and the cause, and leave nothing in TMPDIR.
"""
import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
import trainlib as t  # noqa: E402

HPS = {"feature_dim": 8, "k": 3, "sample_size": 500, "predictor_type": "classifier"}


def make_model(tmp):
    x, y = t.clusters(500, 8, 3, seed=7)
    os.makedirs(os.path.join(tmp, "train"))
    with open(os.path.join(tmp, "train", "part-0.pbr"), "wb") as f:
        f.write(t.recordio_bytes(x, y))
    m = t.manifest("archive", HPS, "file://" + tmp + "/train/", "file://" + tmp + "/out")
    t.write_json(os.path.join(tmp, "job.json"), m)
    r = t.run_train(["--manifest", os.path.join(tmp, "job.json")])
    t.check(r.rc == 0, r.show())
    with open(os.path.join(tmp, "out", "archive", "output", "model.tar.gz"), "rb") as f:
        return f.read()


def members(data):
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for m in tar.getmembers():
            out.append((m.name[2:] if m.name.startswith("./") else m.name, tar.extractfile(m).read()))
    return out


def pack(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def load(tmp, name, data, fsize):
    """knn-runner query --model <archive>, with TMPDIR of its own and RLIMIT_FSIZE = fsize."""
    path = os.path.join(tmp, name + ".tar.gz")
    with open(path, "wb") as f:
        f.write(data)
    tmpdir = os.path.join(tmp, "tmp-" + name)
    os.makedirs(tmpdir)
    env = dict(os.environ, TMPDIR=tmpdir)

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    p = subprocess.run([t.RUNNER, "query", "--model", path, "--format", "jsonl"], input="1,2,3,4,5,6,7,8\n",
                       capture_output=True, text=True, env=env, preexec_fn=limit, timeout=120)
    left = [os.path.join(d, f) for d, _, fs in os.walk(tmpdir) for f in fs]
    return p, left


def main():
    tmp = tempfile.mkdtemp(prefix="knn-archive-")
    good = make_model(tmp)
    files = members(good)
    byname = dict(files)
    meta = json.loads(byname["model_algo-1.json"])
    for name in ("model_algo-1", "model_algo-1.labels"):
        t.check(meta["sha256"][name] == hashlib.sha256(byname[name]).hexdigest(), "sha256 of %s" % name)
        t.check(meta["bytes"][name] == len(byname[name]), "bytes of %s: %s" % (name, meta.get("bytes")))
    fsize = max(len(d) for _, d in files)

    p, left = load(tmp, "good", good, fsize)
    t.check(p.returncode == 0 and p.stdout.startswith("{"), "the real model: exit %d\n%s" % (p.returncode, p.stderr))
    t.check(left == [], "files left in TMPDIR: %s" % left)

    cases = [
        # 64 MiB of zeros (~64 KiB compressed) where 16 KB were declared: refused before writing it.
        ("bigger", [(n, b"\0" * (64 << 20) if n == "model_algo-1" else d) for n, d in files],
         "member 'model_algo-1': 67108864 bytes, but model_algo-1.json declares %d" % len(byname["model_algo-1"])),
        # the declared size, other bytes: refused at the member's end, by its SHA-256.
        ("altered", [(n, d[:-4] + b"\x00\x00\x80\x7f" if n == "model_algo-1.labels" else d) for n, d in files],
         "member 'model_algo-1.labels': SHA-256 "),
        # a member the JSON does not name.
        ("extra", files + [("payload.bin", b"x" * 4096)], "member 'payload.bin' is not one of the files"),
        # a declared member missing.
        ("missing", [(n, d) for n, d in files if n != "model_algo-1.labels"], "no member 'model_algo-1.labels'"),
        # an oversized model_algo-1.json.
        ("bigjson", [(n, d + b" " * (2 << 20) if n == "model_algo-1.json" else d) for n, d in files],
         "member 'model_algo-1.json': %d bytes, more than the 1048576" % (len(byname["model_algo-1.json"]) + (2 << 20))),
    ]
    for name, crafted, want in cases:
        p, left = load(tmp, name, pack(crafted), fsize)
        t.check(p.returncode != 0 and p.returncode > 0, "%s: exit %d (a signal is a crash)\n%s" % (name, p.returncode, p.stderr))
        t.check(want in p.stderr, "%s: the message lacks %r\n%s" % (name, want, p.stderr[-3000:]))
        t.check(left == [], "%s: files left in TMPDIR: %s" % (name, left))
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    main()
