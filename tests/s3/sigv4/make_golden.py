#!/usr/bin/python3
"""Check (default) or complete (--write) the SigV4 golden files of each case directory.

Each case has request.txt (the input our C test feeds the signer) and canonical-request.txt, written
by hand from the SigV4 rules (for the aws-* cases, transcribed from AWS's S3 documentation). This
script derives string-to-sign.txt and signature.txt from the canonical request with Python's hashlib
and hmac, an implementation independent of ours; for the aws-* cases it checks that they agree with
the values AWS published. It never looks at our C code's output.

    tests/s3/sigv4/make_golden.py tests/s3/sigv4/*/          # check
    tests/s3/sigv4/make_golden.py --write tests/s3/sigv4/own-*/  # write missing stages
"""
import hashlib
import hmac
import os
import sys


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    return data[:-1] if data.endswith(b"\n") else data  # one trailing newline is the file's, not the stage's


def request_fields(case):
    fields = {}
    for line in read(os.path.join(case, "request.txt")).decode().split("\n"):
        if line and not line.startswith("#"):
            name, _, value = line.partition(" ")
            fields.setdefault(name, value)
    return fields


def main(argv):
    write = "--write" in argv
    cases = [a for a in argv if a != "--write"]
    bad = 0
    for case in cases:
        f = request_fields(case)
        ak, sk = f["credentials"].split(" ", 1)
        amz_date = f["time"]
        scope = "%s/%s/s3/aws4_request" % (amz_date[:8], f["region"])
        cr = read(os.path.join(case, "canonical-request.txt"))
        sts = "AWS4-HMAC-SHA256\n%s\n%s\n%s" % (amz_date, scope, hashlib.sha256(cr).hexdigest())
        key = ("AWS4" + sk).encode()
        for part in (amz_date[:8], f["region"], "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        for name, value in (("string-to-sign.txt", sts), ("signature.txt", sig)):
            path = os.path.join(case, name)
            if os.path.exists(path):
                if read(path).decode() != value:
                    print("%s: differs from the value derived from canonical-request.txt" % path)
                    bad = 1
            elif write:
                with open(path, "w") as out:
                    out.write(value + "\n")
                print("wrote " + path)
            else:
                print("%s: missing" % path)
                bad = 1
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
