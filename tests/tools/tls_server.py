#!/usr/bin/python3
"""An HTTPS server on loopback that answers every HEAD or GET with a 3-byte object, for the TLS
verification test of the S3 client.

    tls_server.py --cert CERT.pem --key KEY.pem

Prints "PORT <n>" once it listens on 127.0.0.1, then serves until killed.
"""
import argparse
import http.server
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.command, self.path))

    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.send_header("ETag", '"abc"')
        self.end_headers()
        if body:
            self.wfile.write(b"abc")

    def do_HEAD(self):
        self.answer(False)

    def do_GET(self):
        self.answer(True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    opts = p.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(opts.cert, opts.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
