#!/usr/bin/python3
"""A fault-injecting HTTP proxy for S3 tests (Python stdlib only).

    s3_fault_proxy.py --upstream 127.0.0.1:PORT [--port 0]

Sits between a client and an S3 server, relaying bytes unchanged (the Host header too, so SigV4
signatures stay valid), and injects faults armed at run time. It prints "PORT <n>" once it listens
on 127.0.0.1. Each client connection carries one request: the proxy asks the server to close after
its answer and relays it raw (Content-Length or chunked alike), then closes too.

Arm a fault (rules match in the order they were added; each lets `skip` matching requests through,
then fires `count` times):
    POST /__faults?action=ACTION&method=GET&path=SUBSTR&query=SUBSTR&skip=0&count=1&...
actions:
    status    answer `status` (503) with an S3 <Error><Code>`code`</Code> (SlowDown for 503,
              InternalError otherwise) without forwarding; status=200 gives CompleteMultipartUpload's
              "200 OK with an <Error> body".
    reset     TCP RST (SO_LINGER 0). phase=before: after reading the request, before forwarding;
              phase=after: forward, let the server finish, then reset before relaying any byte
              (the server did the work, the client never hears of it); phase=response (default):
              relay the response head and `after` body bytes, then reset; phase=request: reset
              after reading `after` bytes of the request body.
    truncate  relay the head (full Content-Length) and `after` body bytes, then close cleanly (FIN).
    stall     relay the head and `after` body bytes, then send nothing for `ms` ms, then close.
    slow      relay the body at `bps` bytes per second.
    delay     wait `ms` ms before forwarding.
    GET /__faults       the rules as JSON, with `seen` and `fired` counts
    DELETE /__faults    clear the rules
    GET /__log          the last requests: method, path, query, range, if_match, fault (JSON)
    DELETE /__log       clear the log
Bucket names cannot contain '_', so these paths never clash with S3 requests.
"""
import argparse
import json
import socket
import socketserver
import struct
import threading
import time
import urllib.parse

LOCK = threading.Lock()
RULES = []
LOG = []
NEXT_ID = [1]
UPSTREAM = None  # (host, port), set by main()


def xml_error(code, message):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
            '<RequestId>fault-proxy</RequestId></Error>' % (code, message)).encode()


def reset(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def read_head(f):
    """The request or response head (start line + headers), as bytes, or None at EOF."""
    lines = []
    total = 0
    while True:
        line = f.readline(65537)
        if not line:
            return None
        total += len(line)
        if total > 1 << 20:
            raise ValueError("head too large")
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def header(head, name):
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name.lower().encode():
            return v.strip().decode("latin-1")
    return None


def set_connection_close(head):
    out = []
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"connection:") or line.lower().startswith(b"keep-alive:"):
            continue
        out.append(line)
    # out ends with two empty strings (the blank line); insert before them
    return b"\r\n".join(out[:-2] + [b"Connection: close", b"", b""])


def pick_rule(method, path, query):
    with LOCK:
        for r in RULES:
            if r["fired"] >= r["count"]:
                continue
            if r["method"] != "*" and r["method"] != method:
                continue
            if r["path"] and r["path"] not in path:
                continue
            if r["query"] and r["query"] not in query:
                continue
            r["seen"] += 1
            if r["seen"] <= r["skip"]:
                continue
            r["fired"] += 1
            return dict(r)
    return None


def admin(conn, method, path, query):
    def send(status, obj):
        body = (json.dumps(obj) + "\n").encode()
        conn.sendall(b"HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n" % (status, len(body)) + body)

    q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    with LOCK:
        if path.startswith("/__log"):
            if method == "DELETE":
                LOG.clear()
            return send(200, list(LOG))
        if method == "GET":
            return send(200, RULES)
        if method == "DELETE":
            RULES.clear()
            return send(200, [])
        status = int(q.get("status", "503"))
        rule = {
            "id": NEXT_ID[0],
            "action": q.get("action", "status"),
            "method": q.get("method", "*").upper(),
            "path": q.get("path", ""),
            "query": q.get("query", ""),
            "skip": int(q.get("skip", "0")),
            "count": int(q.get("count", "1")),
            "status": status,
            "code": q.get("code", "SlowDown" if status == 503 else "InternalError"),
            "phase": q.get("phase", "response"),
            "after": int(q.get("after", "0")),
            "ms": int(q.get("ms", "1000")),
            "bps": int(q.get("bps", "65536")),
            "seen": 0,
            "fired": 0,
        }
        if rule["action"] not in ("status", "reset", "truncate", "stall", "slow", "delay"):
            return send(400, {"error": "unknown action " + rule["action"]})
        NEXT_ID[0] += 1
        RULES.append(rule)
        return send(200, rule)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        conn = self.request
        try:
            self.serve(conn)
        except (ConnectionError, OSError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def serve(self, conn):
        f = conn.makefile("rb")
        head = read_head(f)
        if head is None:
            return
        start = head.split(b"\r\n", 1)[0].decode("latin-1")
        method, target, _ = start.split(" ", 2)
        path, _, query = target.partition("?")
        if path.startswith("/__faults") or path.startswith("/__log"):
            length = int(header(head, "Content-Length") or 0)
            if length:
                f.read(length)
            return admin(conn, method, path, query)
        rule = pick_rule(method, path, query)
        with LOCK:
            LOG.append({"method": method, "path": path, "query": query, "range": header(head, "Range"),
                        "if_match": header(head, "If-Match"), "fault": rule["action"] if rule else None})
            del LOG[:-500]
        length = int(header(head, "Content-Length") or 0)
        if rule and rule["action"] == "reset" and rule["phase"] == "request":
            f.read(min(rule["after"], length))
            return reset(conn)
        body = f.read(length) if length else b""
        if rule and rule["action"] == "status":
            status = rule["status"]
            payload = xml_error(rule["code"], "injected by s3_fault_proxy")
            reason = {200: "OK", 500: "Internal Server Error", 503: "Slow Down"}.get(status, "Error")
            conn.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
                         b"x-amz-request-id: fault-proxy\r\nConnection: close\r\n\r\n"
                         % (status, reason.encode(), len(payload)) + payload)
            return
        if rule and rule["action"] == "reset" and rule["phase"] == "before":
            return reset(conn)
        if rule and rule["action"] == "delay":
            time.sleep(rule["ms"] / 1000.0)

        up = socket.create_connection(UPSTREAM, timeout=120)
        try:
            up.sendall(set_connection_close(head) + body)
            uf = up.makefile("rb")
            rhead = read_head(uf)
            if rhead is None:
                return reset(conn)
            if rule and rule["action"] == "reset" and rule["phase"] == "after":
                while uf.read(65536):
                    pass
                return reset(conn)
            conn.sendall(rhead)
            sent = 0
            limit = rule["after"] if rule and rule["action"] in ("reset", "truncate", "stall") else None
            bps = rule["bps"] if rule and rule["action"] == "slow" else None
            t0 = time.monotonic()
            while True:
                chunk = uf.read1(65536) if bps is None else uf.read1(max(1, min(65536, bps // 10)))
                if not chunk:
                    break
                if limit is not None and sent + len(chunk) >= limit:
                    conn.sendall(chunk[: limit - sent])
                    if rule["action"] == "reset":
                        return reset(conn)
                    if rule["action"] == "stall":
                        time.sleep(rule["ms"] / 1000.0)
                    return  # truncate (and a stall's end): a clean close
                conn.sendall(chunk)
                sent += len(chunk)
                if bps:
                    ahead = sent / bps - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
            if limit is not None and rule["action"] != "truncate":
                # the body was shorter than `after`: the fault did not apply; nothing more to do
                pass
        finally:
            up.close()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def main():
    global UPSTREAM
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
    p.add_argument("--port", type=int, default=0)
    opts = p.parse_args()
    host, _, port = opts.upstream.rpartition(":")
    UPSTREAM = (host, int(port))
    server = Server(("127.0.0.1", opts.port), Handler)
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
