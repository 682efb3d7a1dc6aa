"""Retries are visible (issue 17): a job that survived throttles and resets says so.

    test_retries.py CASE      (CASE: one of the functions named case_*)

A small training job runs against the local Ceph RGW through tests/tools/s3_fault_proxy.py, which
answers chosen requests with 503 SlowDown or resets them. The job must succeed, log one WARN line
per operation (not one per retry) naming the operation, key, cause and attempt, and count the
retries by cause in job-summary.json (stdout and the object beside the model) as the proxy counted
the faults it injected.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cancel as c  # noqa: E402
t = c.t


def case_retries_in_summary(ctx):
    ctx.data(rows=2000)
    ctx.proxy.arm(action="status", status=503, method="GET", query="list-type", count=3)
    ctx.proxy.arm(action="reset", phase="before", method="GET", path="/train/part-0.pbr", count=2)
    p = ctx.start("retries", args=["--json"])
    out, err = p.communicate(timeout=240)
    t.check(p.returncode == 0, "exit %d\n%s" % (p.returncode, err[-4000:]))
    rules = json.loads(c.urllib.request.urlopen(ctx.proxy.url + "/__faults", timeout=10).read())
    t.check([r["fired"] for r in rules] == [3, 2], "faults fired: %s" % rules)
    want = {"SlowDown": 3, "connection": 2}
    summary = json.loads(out)
    t.check(summary.get("S3Retries") == want, "S3Retries %s, expected %s" % (summary.get("S3Retries"), want))
    stored = json.loads(ctx.s3.get(ctx.prefix + "out/retries/output/job-summary.json"))
    t.check(stored.get("S3Retries") == want, "job-summary.json S3Retries %s" % stored.get("S3Retries"))
    warns = [line for line in err.splitlines() if "WARN" in line and "retrying in" in line]
    lists = [w for w in warns if "ListObjectsV2 s3://" in w]
    gets = [w for w in warns if "GetObject s3://" in w]
    t.check(len(lists) == 1 and "SlowDown" in lists[0] and "attempt 1 of" in lists[0],
            "expected one ListObjectsV2 WARN line naming SlowDown and the attempt: %s" % warns)
    t.check(len(gets) == 1 and "part-0.pbr" in gets[0] and "attempt 1 of" in gets[0],
            "expected one GetObject WARN line naming the key and the attempt: %s" % warns)


def main():
    if len(sys.argv) != 2 or not hasattr(sys.modules[__name__], "case_" + sys.argv[1]):
        t.fail("usage: test_retries.py CASE")
    ctx = c.Ctx(sys.argv[1])
    try:
        getattr(sys.modules[__name__], "case_" + sys.argv[1])(ctx)
    finally:
        ctx.close()
    print("ok")


if __name__ == "__main__":
    main()
