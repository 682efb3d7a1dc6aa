#!/usr/bin/python3
"""A fake AWS credentials endpoint on loopback, for the credentials providers' unit tests.

    fake_credentials_server.py --mode container [--token T]
    fake_credentials_server.py --mode imds [--imds v2|v1] [--role NAME]

Prints "PORT <n>" on stdout once it listens on 127.0.0.1 (port chosen by the OS), then serves until
killed. It checks what the real services check, and answers 401/403/404 otherwise, so a provider
that forgets a header fails its test:

container  GET any path; with --token, "Authorization" must equal it. Answers the credentials JSON.
imds v2    PUT /latest/api/token needs X-aws-ec2-metadata-token-ttl-seconds and returns a token;
           GET /latest/meta-data/iam/security-credentials/[ROLE] needs that token in
           X-aws-ec2-metadata-token (401 otherwise).
imds v1    PUT /latest/api/token answers 404 (an old IMDS); GETs need no token.

--body TEXT replaces the credentials JSON (to test malformed answers). Every request is logged to
stderr as "METHOD PATH" (header values are not logged).
"""
import argparse
import http.server
import json
import secrets
import sys

CREDS = {
    "AccessKeyId": "ASIAFAKEKEYFORTESTS1",
    "SecretAccessKey": "fake/secret/for+tests/only/0000000000000",
    "Token": "fake-session-token//with+chars==",
    "Expiration": "2031-05-06T07:08:09Z",
}


def make_handler(opts):
    issued = set()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            sys.stderr.write("%s %s\n" % (self.command, self.path))

        def reply(self, status, body=b"", ctype="text/plain"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def creds_body(self, extra=None):
            if opts.body is not None:
                return opts.body.encode()
            doc = dict(CREDS)
            if extra:
                doc.update(extra)
            return json.dumps(doc).encode()

        def do_GET(self):
            if opts.mode == "container":
                if opts.token is not None and self.headers.get("Authorization") != opts.token:
                    return self.reply(401, b"bad or missing Authorization")
                return self.reply(200, self.creds_body(), "application/json")
            if opts.imds == "v2" and self.headers.get("X-aws-ec2-metadata-token") not in issued:
                return self.reply(401, b"missing or unknown IMDSv2 token")
            base = "/latest/meta-data/iam/security-credentials/"
            if self.path == base:
                if not opts.role:
                    return self.reply(404, b"no role")
                return self.reply(200, opts.role.encode())
            if self.path == base + (opts.role or ""):
                body = self.creds_body({"Code": "Success", "Type": "AWS-HMAC", "LastUpdated": "2031-05-06T01:00:00Z"})
                return self.reply(200, body, "application/json")
            return self.reply(404, b"not found")

        def do_PUT(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if opts.mode != "imds" or self.path != "/latest/api/token":
                return self.reply(405, b"method not allowed")
            if opts.imds == "v1":
                return self.reply(404, b"not found")
            if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self.reply(400, b"missing TTL header")
            token = secrets.token_urlsafe(24)
            issued.add(token)
            return self.reply(200, token.encode())

    return Handler


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["container", "imds"], required=True)
    p.add_argument("--token")
    p.add_argument("--imds", choices=["v1", "v2"], default="v2")
    p.add_argument("--role", default="knn-test-role")
    p.add_argument("--body")
    opts = p.parse_args()
    if opts.role == "":
        opts.role = None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(opts))
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
