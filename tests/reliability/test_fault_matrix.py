"""The fault matrix (issue 17): every S3 operation a training job uses x {503 burst, 503 forever,
reset mid-body, truncation, stall}, against the local Ceph RGW through tests/tools/s3_fault_proxy.py.

    test_fault_matrix.py FAULT      (FAULT: burst, forever, reset, truncate, stall)

One job without faults gives the reference model; then, for each operation, the fault is armed on
that operation only and the same job runs again. Every case must end either in success with the
model files byte-identical to the reference (model.tar.gz itself differs only in tar mtimes), or,
for 503 forever, in a clear failure naming the operation; and in every case with zero multipart
uploads left and no partial object (nothing at the output path after a failure). What is left is
read with /usr/bin/aws straight from RGW. The one case this cannot cover, the process being killed
(SIGKILL), is described in docs/troubleshooting.md; a stop (SIGTERM) is test_cancel.py's.

The model is ~9 MiB so that its upload is multipart (Create, UploadPart, Complete).
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cancel as c  # noqa: E402
t = c.t

# operation: (proxy rule matching it, whether its request has a body, whether its answer has one)
OPS = {
    "ListObjectsV2": (dict(method="GET", query="list-type"), False, True),
    "HeadObject": (dict(method="HEAD"), False, False),
    "GetObject": (dict(method="GET", path="/train/part-"), False, True),
    "CreateMultipartUpload": (dict(method="POST", query="uploads"), False, True),
    "UploadPart": (dict(method="PUT", query="partNumber"), True, False),
    "CompleteMultipartUpload": (dict(method="POST", query="uploadId"), True, True),
    "PutObject": (dict(method="PUT", path="job-summary.json"), True, False),
}


def fault_rule(fault, has_req_body, has_resp_body):
    """The proxy rule for a fault on one operation, or None where it cannot apply."""
    if fault == "burst":
        return dict(action="status", status=503, count=2)
    if fault == "forever":
        return dict(action="status", status=503, count=1000)
    if fault == "reset":  # mid-body: of the answer when there is one, else of the request
        if has_resp_body:
            return dict(action="reset", phase="response", after=100, count=1)
        if has_req_body:
            return dict(action="reset", phase="request", after=1000, count=1)
        return dict(action="reset", phase="before", count=1)
    if fault == "truncate":
        return dict(action="truncate", after=100, count=1) if has_resp_body else None
    if fault == "stall":  # a body that stops for 3 s then ends short (or an answer 3 s late)
        if has_resp_body:
            return dict(action="stall", after=100, ms=3000, count=1)
        return dict(action="delay", ms=3000, count=1)
    raise ValueError(fault)


def run_job(ctx, name):
    p = ctx.start(name, args=["--json"])
    out, err = p.communicate(timeout=240)
    return p.returncode, out, err


def model_files(ctx, name):
    return t.read_model_tar(ctx.s3.get(ctx.prefix + "out/%s/output/model.tar.gz" % name))


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("burst", "forever", "reset", "truncate", "stall"):
        t.fail("usage: test_fault_matrix.py burst|forever|reset|truncate|stall")
    fault = sys.argv[1]
    ctx = c.Ctx("matrix-" + fault)
    try:
        ctx.data()
        rc, out, err = run_job(ctx, "reference")
        t.check(rc == 0, "the reference job failed\n" + err[-4000:])
        reference = model_files(ctx, "reference")
        t.check(len(reference["model_algo-1"]) > 8 << 20, "the model is not multipart-sized")
        seen = set(e["method"] + " " + e["path"] + "?" + e["query"] for e in ctx.proxy.log())
        for op, (match, req_body, resp_body) in OPS.items():
            rule = fault_rule(fault, req_body, resp_body)
            if rule is None:
                print("%s x %s: not applicable (no response body)" % (op, fault))
                continue
            urllib_delete(ctx.proxy.url + "/__faults")
            ctx.proxy.arm(**dict(rule, **match))
            name = "%s-%s" % (op.lower(), fault)
            t0 = time.monotonic()
            rc, out, err = run_job(ctx, name)
            took = time.monotonic() - t0
            fired = json.loads(c.urllib.request.urlopen(ctx.proxy.url + "/__faults", timeout=10).read())[0]["fired"]
            t.check(fired >= 1, "%s x %s: the fault never fired (rule %s; requests seen: %s)" % (op, fault, rule, seen))
            if fault == "forever":
                t.check(rc == 1, "%s x 503 forever: exit %d\n%s" % (op, rc, err[-3000:]))
                reason = json.loads(out).get("FailureReason", "")
                t.check(op in reason and "HTTP 503" in reason and reason.startswith(("ClientError", "AlgorithmError")),
                        "%s x 503 forever: unclear reason %r" % (op, reason))
                keys = ctx.s3.keys(ctx.prefix + "out/" + name + "/")
                t.check(keys == [], "%s x 503 forever: objects left: %s" % (op, keys))
            else:
                t.check(rc == 0, "%s x %s: exit %d\n%s" % (op, fault, rc, err[-3000:]))
                got = model_files(ctx, name)
                for f in reference:
                    t.check(got[f] == reference[f], "%s x %s: %s differs from the reference" % (op, fault, f))
                retries = json.loads(out).get("S3Retries", {})
                if rule["action"] != "delay":  # a late answer is no retry; every other fault forces one
                    t.check(sum(retries.values()) >= 1, "%s x %s: no retry counted: %s" % (op, fault, retries))
            ups = ctx.s3.uploads(ctx.prefix)
            t.check(ups == [], "%s x %s: multipart uploads left: %s" % (op, fault, ups))
            print("%s x %s: %s in %.1f s" % (op, fault, "failed cleanly" if rc else "byte-identical", took))
    finally:
        ctx.close()
    print("ok")


def urllib_delete(url):
    c.urllib.request.urlopen(c.urllib.request.Request(url, method="DELETE"), timeout=10).read()


if __name__ == "__main__":
    main()
