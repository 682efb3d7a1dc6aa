"""The endpoint under hostile and busy clients, on loopback only, every loop bounded in count and
time (issue 14):
- 2,000 idle connections and 600 clients trickling header bytes: /ping stays 200 within 100 ms,
  the trickling clients are cut at the request deadline (--timeout), a client address over
  --max-connections-per-client is refused;
- 40 requests at once against a queue of 2: 503 with Retry-After at once for the others;
- 500 clients that send a request with a large answer and never read: the server's RSS stays
  within the bound of docs/endpoint-api.md (budget + connections x per-connection memory), those
  over the budget get 503 with Retry-After, and the server answers normally afterwards;
- concurrent requests of mixed sizes and formats with dynamic batching: each answer is its own
  (numpy brute force) and byte-identical to the answer of a server searching each request alone.
"""
import http.client
import json
import os
import random
import re
import resource
import socket
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_harness as h  # noqa: E402

rng = np.random.default_rng(14)
DIM, N, K = 8, 2000, 5
X = rng.normal(size=(N, DIM)).astype(np.float32)
LABELS = np.arange(N).astype(np.float32)  # retrieval: the label is the row id


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 16384)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def ping_ms(port, source="127.0.0.1"):
    start = time.time()
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    try:
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = b""
        while True:
            c = s.recv(4096)
            if not c:
                break
            out += c
    finally:
        s.close()
    return out.startswith(b"HTTP/1.1 200"), (time.time() - start) * 1e3


def connect_many(port, n, source):
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
        out.append(s)
    return out


def closed_by_peer(s, wait=0.0):
    s.settimeout(wait)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def flood(tmp, model):
    """2,000 idle + 600 slow-header connections; /ping within 100 ms; deadline; per-client cap."""
    deadline_s = 5
    with h.Server(model, tmp, ["--timeout", str(deadline_s), "--max-connections-per-client", "1200"]) as srv:
        idle = connect_many(srv.port, 1000, "127.0.0.2") + connect_many(srv.port, 1000, "127.0.0.3")
        slow = connect_many(srv.port, 600, "127.0.0.4")
        opened = time.time()
        for s in slow:
            s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
        # Over the per-client cap: 1,000 are open from 127.0.0.3 (well within the deadline), the cap is 1,200.
        extra = connect_many(srv.port, 300, "127.0.0.3")
        time.sleep(0.3)
        refused = sum(1 for s in extra if closed_by_peer(s, 0.01))
        h.check(time.time() - opened < deadline_s - 2 and 90 <= refused <= 110,
                "per-client cap 1200 with 1300 connections: %d refused (want ~100)" % refused)
        times, sent_bytes = [], 0
        # One header byte per slow client every 0.5 s, pings in between, for 3 s (under the deadline).
        while time.time() - opened < deadline_s - 1.5:
            for s in slow:
                try:
                    s.sendall(b"X")
                    sent_bytes += 1
                except OSError:
                    pass
            for _ in range(10):
                ok, ms = ping_ms(srv.port)
                times.append(ms)
                h.check(ok, "/ping under 2,600 held connections did not answer 200")
            time.sleep(0.2)
        # Within 100 ms; one ping in 40 may miss it on a loaded 2-core CI machine (the client shares
        # the cores with the server and 600 writers), but not by much.
        times.sort()
        late = sum(1 for t in times if t >= 100)
        print("/ping with 2,600 held connections: %d pings, median %.1f ms, worst %.1f ms" % (
            len(times), times[len(times) // 2], times[-1]))
        h.check(len(times) >= 10 and late <= len(times) // 40 and times[-1] < 500,
                "/ping: %d of %d pings took 100 ms or more (worst %.1f ms)" % (late, len(times), times[-1]))
        # The trickling clients keep sending, yet are cut at the deadline.
        while time.time() - opened < deadline_s + 2:
            for s in slow:
                try:
                    s.sendall(b"X")
                except OSError:
                    pass
            time.sleep(0.5)
        cut = sum(1 for s in slow if closed_by_peer(s, 0.01))
        h.check(cut == len(slow), "%d of %d header-trickling clients cut after the %d s deadline" %
                (cut, len(slow), deadline_s))
        ok, ms = ping_ms(srv.port)
        h.check(ok, "/ping after the flood")
        for s in idle + slow + extra:
            s.close()


def never_read(tmp, model):
    """500 clients with large answers that never read: RSS within budget + connections x 32 KiB."""
    budget_mb, clients = 8, 500
    q = rng.normal(size=(3000, DIM)).astype(np.float32)
    body = h.body_csv(q).encode()  # answers of ~600 KB each (verbose JSON Lines)
    with h.Server(model, tmp, ["--memory-budget-mb", str(budget_mb), "--workers", "2"]) as srv:
        status, _, resp = srv.invoke(body, "text/csv", "application/jsonlines; verbose=true")
        h.check(status == 200 and len(resp) > 400000, "a large answer: %d, %d bytes" % (status, len(resp)))
        base = rss_kib(srv.proc.pid)
        socks = []
        req = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
               b"Accept: application/jsonlines; verbose=true\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
        for i in range(clients):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(req)
            socks.append(s)
        peak = base
        start = time.time()
        while time.time() - start < 6:
            peak = max(peak, rss_kib(srv.proc.pid))
            time.sleep(0.2)
        # docs/endpoint-api.md: RSS <= ready + budget + connections x 32 KiB + workers x batch (here
        # one 3,000-row search: rows, predictions, the answer being encoded: < 2 MB each).
        bound = base + budget_mb * 1024 + clients * 32 + 2 * 2048 + 16 * 1024  # + 16 MiB for malloc's arenas
        h.check(peak <= bound, "RSS peak %d KiB over the bound %d KiB (at ready: %d KiB)" % (peak, bound, base))
        print("never-reading clients: RSS %d KiB at start, peak %d KiB, bound %d KiB" % (base, peak, bound))
        ok, ms = ping_ms(srv.port)
        h.check(ok and ms < 100, "/ping with 500 unread answers: %s in %.1f ms" % (ok, ms))
        # Those over the budget were told so at once: read the first bytes of a few answers.
        busy = 0
        for s in socks[-50:]:
            s.settimeout(5)
            try:
                head = s.recv(256)
            except OSError:
                head = b""
            if head.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in head:
                busy += 1
        h.check(busy >= 40, "of the last 50 requests over the budget, %d got 503 with Retry-After" % busy)
        for s in socks:
            s.close()
        time.sleep(0.5)
        status, _, resp = srv.invoke(body, "text/csv", "application/jsonlines; verbose=true")
        h.check(status == 200, "a request after the clients left: %d %r" % (status, resp[:200]))


def queue_full(tmp, model):
    """A full queue answers 503 with Retry-After at once; the others are answered normally."""
    q = rng.normal(size=(3000, DIM)).astype(np.float32)
    body = h.body_csv(q).encode()
    req = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nConnection: close\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body)) + body
    with h.Server(model, tmp, ["--workers", "1", "--max-queue", "2", "--batch-max-rows", "1"]) as srv:
        socks = []
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
            s.sendall(req)
            socks.append(s)
        ok = busy = 0
        for s in socks:
            out = b""
            while True:
                c = s.recv(65536)
                if not c:
                    break
                out += c
            s.close()
            if out.startswith(b"HTTP/1.1 200"):
                ok += 1
            elif out.startswith(b"HTTP/1.1 503") and b"Retry-After: 1\r\n" in out and b"queue" in out:
                busy += 1
        h.check(ok >= 3 and busy >= 10 and ok + busy == 40,
                "40 requests at once, queue of 2: %d answered, %d told 503 + Retry-After" % (ok, busy))


FORMATS = [
    ("text/csv", h.body_csv),
    ("application/json", h.body_json),
    ("application/jsonlines", h.body_jsonlines),
    ("application/x-recordio-protobuf", h.body_recordio),
]
ACCEPTS = ["application/json", "application/jsonlines; verbose=true", "application/json; verbose=true",
           "application/x-recordio-protobuf; verbose=true", "application/jsonlines"]


def decode(accept, body):
    """(labels per row) of any answer; predicted labels for non-verbose ones."""
    if accept.startswith("application/x-recordio-protobuf"):
        return [list(r.label["labels"].float32_tensor.values) for r in h.parse_recordio(body)]
    text = body.decode()
    if accept.startswith("application/jsonlines"):
        objs = [json.loads(line) for line in text.splitlines()]
    else:
        objs = json.loads(text)["predictions"]
    return [o.get("labels", [o["predicted_label"]]) for o in objs]


def mixed(tmp, model):
    """Concurrent mixed requests, batched: each answer its own, byte-identical to searching alone."""
    random.seed(14)
    cases = []
    for i in range(480):
        rows = random.choice([1, 1, 1, 2, 3, 5, 8, 13, 40])
        q = rng.normal(size=(rows, DIM)).astype(np.float32)
        ct, enc = random.choice(FORMATS)
        body = enc(q)
        cases.append((q, ct, random.choice(ACCEPTS), body.encode() if isinstance(body, str) else body))
    want = [h.brute_force(X, LABELS, c[0], K) for c in cases]  # (predicted, labels, distances)

    def run(port, answers):
        def client(idx):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for i in idx:
                q, ct, accept, body = cases[i]
                conn.request("POST", "/invocations", body=body, headers={"Content-Type": ct, "Accept": accept})
                r = conn.getresponse()
                answers[i] = (r.status, r.read())
            conn.close()
        threads = [threading.Thread(target=client, args=(range(t, len(cases), 48),)) for t in range(48)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)

    batched, alone = [None] * len(cases), [None] * len(cases)
    env = {"KNN_LOG_LEVEL": "debug"}
    with h.Server(model, tmp, ["--batch-max-rows", "64", "--batch-wait-us", "2000", "--workers", "2"],
                  env=env) as srv:
        run(srv.port, batched)
        batches = re.findall(r"batch: (\d+) requests", srv.log_text())
    h.check(len(batches) > 0, "no request was batched with another (the test would prove nothing)")
    print("mixed: %d searches held more than one request (largest: %s requests)" % (
        len(batches), max([int(b) for b in batches] or [0])))
    with h.Server(model, tmp, ["--batch-max-rows", "1"]) as srv:
        run(srv.port, alone)
    for i, c in enumerate(cases):
        got = batched[i]
        if not got or got[0] != 200:
            h.check(False, "case %d: %r" % (i, got and (got[0], got[1][:200])))
            continue
        h.check(alone[i] is not None and got[1] == alone[i][1], "case %d (%s -> %s, %d rows): batched answer "
                "differs from the answer alone" % (i, c[1], c[2], len(c[0])))
        labels = decode(c[2], got[1])
        preds, lab, dist = want[i]
        if not h.check(len(labels) == len(c[0]), "case %d: %d answers for %d rows" % (i, len(labels), len(c[0]))):
            continue
        if "verbose" in c[2]:
            ok = all(h.same_neighbours(labels[r], lab[r], dist[r]) for r in range(len(c[0])))
        else:  # the predicted label is the nearest row's id, unless the two nearest tie
            ok = all(labels[r][0] == preds[r] or abs(dist[r][0] - dist[r][1]) <= 1e-3 * (1 + dist[r][0])
                     for r in range(len(c[0])))
        h.check(ok, "case %d: the answer differs from brute force" % i)


def main():
    nofile = raise_nofile()
    if nofile < 4000:
        print("SKIP: RLIMIT_NOFILE is %d, under the 4,000 this test needs" % nofile)
        sys.exit(103)
    with h.TempDir("serve-load") as tmp:
        model = h.make_model(os.path.join(tmp, "model"), X, LABELS, K)
        flood(tmp, model)
        never_read(tmp, model)
        queue_full(tmp, model)
        mixed(tmp, model)
    h.finish()


if __name__ == "__main__":
    main()
