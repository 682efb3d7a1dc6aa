"""Bad requests never crash, hang or leak (spec 3.4): each gets the right status and a JSON error
naming the problem, and the server stays healthy (a /ping and a good request after each). Also:
stalled clients time out, and SIGTERM lets a request in flight finish. Runs under ASan too."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_harness as h  # noqa: E402

rng = np.random.default_rng(11)
DIM, N, K = 4, 50, 3
X = rng.normal(size=(N, DIM)).astype(np.float32)
LABELS = rng.integers(0, 3, size=N).astype(np.float32)
GOOD = h.body_csv(X[:2])

CASES = [
    # name, content type, accept, body, status, words the message must contain
    ("truncated JSON", "application/json", None, '{"instances": [{"features": [1, 2', 400, "JSON body"),
    ("wrong width CSV", "text/csv", None, "1,2,3,4\n1,2,3\n", 400, "row 2"),
    ("wrong width JSON", "application/json", None, '{"instances": [{"features": [1, 2, 3]}]}', 400, "row 1"),
    ("wrong width JSON Lines", "application/jsonlines", None, '{"features": [1,2,3,4]}\n{"features": [1]}\n', 400,
     "row 2"),
    ("string value", "application/json", None, '{"instances": [{"features": [1, "2", 3, 4]}]}', 400, "not a number"),
    ("no instances", "application/json", None, '{"rows": []}', 400, "instances"),
    ("instances not objects", "application/json", None, '{"instances": [[1, 2, 3, 4]]}', 400, "row 1"),
    ("NaN in CSV", "text/csv", None, "1,nan,3,4\n", 400, "row 1"),
    ("NaN literal in JSON", "application/json", None, '{"instances": [{"features": [NaN, 1, 2, 3]}]}', 400, "JSON"),
    ("overflow to inf", "text/csv", None, "1,1e39,3,4\n", 400, "row 1"),
    ("sparse key out of range", "application/json", None,
     '{"instances": [{"data": {"features": {"keys": [9], "shape": [4], "values": [1.0]}}}]}', 400, "row 1"),
    ("garbage protobuf", "application/x-recordio-protobuf", None, bytes(range(256)) * 4, 400, ""),
    ("protobuf with the magic and junk", "application/x-recordio-protobuf", None,
     (0xCED7230A).to_bytes(4, "little") + (12).to_bytes(4, "little") + b"\xff" * 12, 400, "record"),
    ("truncated protobuf", "application/x-recordio-protobuf", None, h.body_recordio(X[:2])[:-7], 400, ""),
    ("protobuf of the wrong width", "application/x-recordio-protobuf", None, h.body_recordio(X[:1, :3]), 400, ""),
    ("empty body", "text/csv", None, "", 400, "no rows"),
    ("empty JSON instances", "application/json", None, '{"instances": []}', 400, "no rows"),
    ("unknown Accept", "text/csv", "text/html", GOOD, 406, "Accept"),
    ("CSV Accept", "text/csv", "text/csv", GOOD, 406, "Accept"),
    ("bad verbose", "text/csv", "application/json; verbose=maybe", GOOD, 400, "verbose"),
    ("unknown Content-Type", "image/png", None, GOOD, 415, "Content-Type"),
    ("missing Content-Type", None, None, GOOD, 415, "Content-Type"),
    ("bad label_size", "text/csv; label_size=x", None, GOOD, 400, "label_size"),
    ("latin-1 charset", "text/csv; charset=latin-1", None, GOOD, 415, "UTF-8"),
    ("binary junk as CSV", "text/csv", None, b"\x00\xff\xfe,\x01\n", 400, "row 1"),
    # finite features whose squared distance overflows float32: no Infinity in any answer
    ("distance overflows float32", "text/csv", None, "3e19,1,1,1\n", 400, "row 1"),
    ("distance overflows float32, verbose", "text/csv", "application/jsonlines; verbose=true",
     "1,1,1,1\n-3e19,1,1,1\n", 400, "row 2"),
    ("distance overflows float32, protobuf answer", "text/csv", "application/x-recordio-protobuf",
     "3e19,1,1,1\n", 400, "row 1"),
    # a record that claims more bytes than the body holds is cut short, not too large
    ("truncated one-record protobuf", "application/x-recordio-protobuf", None, h.body_recordio(X[:1])[:-3], 400,
     "truncated"),
]

# Requests whose body cannot be delimited safely: 400 at once, and the connection is closed.
FRAMING = [
    ("Transfer-Encoding gzip", b"Transfer-Encoding: gzip\r\n\r\n1,2,3,4\n", "gzip"),
    ("Transfer-Encoding gzip, chunked", b"Transfer-Encoding: gzip, chunked\r\n\r\n8\r\n1,2,3,4\n\r\n0\r\n\r\n",
     "gzip"),
    ("Content-Length with chunked", b"Content-Length: 8\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n1,2,3,4\n\r\n0\r\n\r\n",
     "both"),
    ("two different Content-Lengths", b"Content-Length: 8\r\nContent-Length: 9\r\n\r\n1,2,3,4\n", "Content-Length"),
    ("Content-Length not a number", b"Content-Length: 8x\r\n\r\n1,2,3,4\n", ""),
    ("Content-Length negative", b"Content-Length: -8\r\n\r\n1,2,3,4\n", ""),
]


def still_healthy(srv, what):
    h.check(srv.healthy(), "%s: /ping is not 200 afterwards" % what)
    status, _, body = srv.invoke(GOOD, "text/csv", "application/json")
    h.check(status == 200 and len(json.loads(body)["predictions"]) == 2,
            "%s: a good request afterwards got %d %r" % (what, status, body[:200]))


def check_error(status, headers, body, want_status, words, what):
    h.check(status == want_status, "%s: HTTP %d, expected %d (%r)" % (what, status, want_status, body[:300]))
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    h.check(isinstance(doc, dict) and "message" in doc and "error" in doc,
            "%s: error body is not a JSON error object: %r" % (what, body[:300]))
    if doc and words:
        h.check(words in doc["message"], "%s: message %r does not mention %r" % (what, doc["message"], words))


def raw_request(port, data, read=True, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    if read:
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            out += b"<timeout>"
    s.close()
    return out


def main():
    with h.TempDir("serve-bad") as tmp:
        model = h.make_model(os.path.join(tmp, "model"), X, LABELS, K)
        with h.Server(model, tmp, ["--max-payload-mb", "1", "--timeout", "2", "--log-interval", "1"]) as srv:
            for name, ct, accept, body, want, words in CASES:
                headers = {}
                if ct is not None:
                    headers["Content-Type"] = ct
                if accept is not None:
                    headers["Accept"] = accept
                if isinstance(body, str):
                    body = body.encode()
                check_error(*srv.request("POST", "/invocations", body, headers), want, words, name)
                still_healthy(srv, name)

            # Too big: announced by Content-Length, and streamed without one (chunked).
            big = ("1,2,3,4\n" * (1 << 18)).encode()  # 2 MiB
            check_error(*srv.invoke(big, "text/csv"), 413, "limit", "huge body")
            still_healthy(srv, "huge body")
            # curl sends "Expect: 100-continue" for big bodies: answered before the body is sent.
            big_path = os.path.join(tmp, "big.csv")
            with open(big_path, "wb") as f:
                f.write(big)
            out = subprocess.run(["curl", "-sS", "-H", "Content-Type: text/csv", "--data-binary", "@" + big_path,
                                  "http://127.0.0.1:%d/invocations" % srv.port], capture_output=True)
            try:
                msg = json.loads(out.stdout).get("message", "")
            except ValueError:
                msg = ""
            h.check("limit" in msg, "curl huge body: %r %r" % (out.stdout[:200], out.stderr[:200]))
            still_healthy(srv, "curl huge body")
            conn_resp = raw_request(srv.port, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                                    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
                                    b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 65536]), big[i:i + 65536])
                                             for i in range(0, len(big), 65536)) + b"0\r\n\r\n")
            h.check(b" 413 " in conn_resp.split(b"\r\n", 1)[0], "chunked huge body: %r" % conn_resp[:200])
            still_healthy(srv, "chunked huge body")

            # Ambiguous or unsupported body framing: 400 at once (the connection stays open on the
            # client's side, so an answer that waited for a timeout would show), then closed.
            for name, framing, words in FRAMING:
                start = time.time()
                out = raw_request(srv.port, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n" +
                                  framing, timeout=5)
                took = time.time() - start
                head, _, rest = out.partition(b"\r\n\r\n")
                h.check(head.startswith(b"HTTP/1.1 400 ") and took < 1.5,
                        "%s: %r after %.1f s" % (name, out[:200], took))
                if words:
                    h.check(words.encode() in rest, "%s: the answer does not mention %r: %r" % (name, words, rest))
                still_healthy(srv, name)
            # A request line that is not HTTP: the connection is closed at once, not held.
            for junk in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", b"HELLO THERE\r\n\r\n"):
                start = time.time()
                out = raw_request(srv.port, junk, timeout=5)
                h.check(b"<timeout>" not in out and time.time() - start < 1.5 and (out == b"" or out.startswith(b"HTTP/1.1 400")),
                        "garbage request line %r: %r" % (junk, out[:200]))
            still_healthy(srv, "garbage request lines")

            # A second server on the same port is refused with a clear error (no SO_REUSEPORT).
            second = subprocess.run([h.RUNNER, "serve", "--model", model, "--host", "127.0.0.1", "--port", str(srv.port)],
                                    capture_output=True, timeout=60)
            h.check(second.returncode != 0 and b"already in use" in second.stderr,
                    "second server on port %d: exit %d, %r" % (srv.port, second.returncode, second.stderr[-300:]))
            still_healthy(srv, "second server")

            # Routes and methods.
            check_error(*srv.request("GET", "/nothing"), 404, "/nothing", "unknown path")
            check_error(*srv.request("GET", "/invocations"), 405, "GET", "GET /invocations")
            check_error(*srv.request("POST", "/predict", big[:200000], {"Content-Type": "text/csv"}), 404,
                        "/predict", "POST with a body to an unknown path")
            check_error(*srv.request("PUT", "/invocations", GOOD.encode(), {"Content-Type": "text/csv"}), 405,
                        "PUT", "PUT /invocations")
            still_healthy(srv, "routes")

            # A stalled client (headers never finished) is dropped after the timeout; others go on.
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Ty")
            still_healthy(srv, "stalled client")
            start = time.time()
            try:
                closed = s.recv(100) == b""
            except (socket.timeout, ConnectionResetError):
                closed = False
            h.check(closed and time.time() - start < 9, "a stalled client was not dropped after the 2 s timeout")
            s.close()
            # A client that stops in the middle of its body.
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100\r\n\r\n1,2")
            try:
                s.recv(100)  # b"" (closed) or an error response: either way the server let go
                closed = True
            except socket.timeout:
                closed = False
            h.check(closed, "a client stalled in its body was not dropped")
            s.close()
            still_healthy(srv, "stalled body")

            # SIGTERM while a request is in flight: it is answered, then the server exits 0.
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
            body = GOOD.encode()
            s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nConnection: close\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body[:3])
            time.sleep(0.3)
            srv.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            h.check(srv.proc.poll() is None, "the server exited with a request in flight")
            s.sendall(body[3:])
            resp = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                resp += chunk
            s.close()
            h.check(resp.startswith(b"HTTP/1.1 200") and b"predictions" in resp,
                    "in-flight request during SIGTERM: %r" % resp[:200])
            try:
                srv.proc.wait(timeout=30)
            except Exception:
                pass
            log = srv.log_text()
            h.check("SIGTERM received" in log and "stopped" in log, "no shutdown lines in the log")
            # At INFO: no line per request and none for /ping, but summaries with counts by status.
            h.check(re.search(r"/ping", log) is None and re.search(r"POST /invocations \d{3} rows=", log) is None,
                    "per-request lines at INFO: %r" % log[-2000:])
            h.check(re.search(r"last \d+ s: \d+ requests \(200: \d+, 400: \d+.*\), \d+ rows, .*p50 [0-9.]+ ms, "
                              r"p99 [0-9.]+ ms, \d+ pings", log) is not None, "no summary line: %r" % log[-2000:])
    h.finish()


if __name__ == "__main__":
    main()
