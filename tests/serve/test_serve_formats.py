"""Every Content-Type x Accept pair of POST /invocations, verbose and not, against models with
answers computed independently (numpy brute force), read by independent clients (Python's json,
python3-protobuf, curl). Spec 3.2-3.4."""
import json
import os
import re
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_harness as h  # noqa: E402

rng = np.random.default_rng(7)
DIM, N, K = 8, 400, 5
X = rng.normal(size=(N, DIM)).astype(np.float32)
LABELS = rng.integers(0, 4, size=N).astype(np.float32)
Q = rng.normal(size=(6, DIM)).astype(np.float32)
Q[2, 1] = 0.0  # a few zeros for the sparse body
Q[2, 5] = 0.0

NUMBER = re.compile(r'(?<=[\[ :])(-?[0-9][0-9.e+-]*)(?=[,\]}])')


def check_number_text(text, what):
    """Every number is written as float32's shortest repr, with a '.' or an exponent (0.0, not 0)."""
    for tok in NUMBER.findall(text):
        ok = ("." in tok or "e" in tok) and repr(float(tok)) == tok
        if not h.check(ok, "%s: number %r is not in shortest repr form" % (what, tok)):
            return


def strict_json(text):
    """json.loads as a strict parser (JavaScript's JSON.parse): NaN and Infinity are not JSON."""
    def refuse(name):
        raise ValueError("%s is not JSON" % name)
    return json.loads(text, parse_constant=refuse)


def decode(status, headers, body, accept_media, verbose, what):
    """Turn any response into (predicted, labels, distances) lists, checking its exact shape."""
    if not h.check(status == 200, "%s: HTTP %d %s" % (what, status, body[:300])):
        return None
    ctype = headers.get("content-type", "")
    h.check(ctype == accept_media, "%s: Content-Type %r, expected %r" % (what, ctype, accept_media))
    keys = {"predicted_label", "distances", "labels"} if verbose else {"predicted_label"}
    objs = []
    if accept_media == "application/json":
        text = body.decode()
        check_number_text(text, what)
        doc = strict_json(text)
        h.check(list(doc.keys()) == ["predictions"], "%s: top-level keys %r" % (what, list(doc.keys())))
        objs = doc["predictions"]
    elif accept_media == "application/jsonlines":
        text = body.decode()
        check_number_text(text, what)
        h.check(text.endswith("\n"), "%s: JSON Lines body does not end with a newline" % what)
        objs = [strict_json(line) for line in text.splitlines()]
    else:
        for rec in h.parse_recordio(body):
            h.check(len(rec.features) == 0, "%s: response record has features" % what)
            o = {}
            for name in rec.label:
                o[name] = list(rec.label[name].float32_tensor.values)
            o["predicted_label"] = o["predicted_label"][0] if len(o.get("predicted_label", [])) == 1 else None
            objs.append(o)
    for o in objs:
        if not h.check(set(o.keys()) == keys, "%s: keys %r, expected %r" % (what, sorted(o.keys()), sorted(keys))):
            return None
    return ([o["predicted_label"] for o in objs], [o.get("labels") for o in objs], [o.get("distances") for o in objs])


def check_answers(got, want, verbose, what, nrows):
    if got is None:
        return
    pred, lab, dist = got
    wp, wl, wd = want
    if not h.check(len(pred) == nrows, "%s: %d predictions for %d rows" % (what, len(pred), nrows)):
        return
    h.check(h.close_enough(pred, wp[:nrows], 1e-5), "%s: predicted %r, expected %r" % (what, pred, list(wp[:nrows])))
    if verbose:
        for i in range(nrows):
            h.check(h.same_neighbours(lab[i], wl[i], wd[i]), "%s row %d: labels %r, expected %r" % (what, i, lab[i], wl[i]))
            h.check(h.close_enough(dist[i], wd[i]), "%s row %d: distances %r, expected %r" % (what, i, dist[i], wd[i]))


def main():
    with h.TempDir("serve-formats") as tmp:
        model = h.make_model(os.path.join(tmp, "model"), X, LABELS, K)
        want = h.brute_force(X, LABELS, Q, K)
        bodies = {
            "text/csv": h.body_csv(Q),
            "text/csv; label_size=1": h.body_csv(Q, label_size=1),
            "application/json": h.body_json(Q, "features"),
            "application/json; shape=values": h.body_json(Q, "values"),
            "application/json; shape=sparse": h.body_json(Q, "sparse"),
            "application/jsonlines": h.body_jsonlines(Q),
            "application/x-recordio-protobuf": h.body_recordio(Q),
        }
        accepts = ["application/json", "application/jsonlines", "application/x-recordio-protobuf"]
        with h.Server(model, tmp, env={"KNN_LOG_LEVEL": "debug"}) as srv:
            h.check(srv.request("GET", "/ping")[0] == 200, "/ping is not 200")
            for ct, body in bodies.items():
                sent_ct = ct.split("; shape=")[0]
                for accept in accepts:
                    for verbose in (False, True):
                        acc = accept + ("; verbose=true" if verbose else "")
                        what = "%s -> %s" % (ct, acc)
                        got = decode(*srv.invoke(body, sent_ct, acc), accept, verbose, what)
                        check_answers(got, want, verbose, what, len(Q))
                # no Accept and */* mean application/json
                for acc in (None, "*/*"):
                    got = decode(*srv.invoke(body, sent_ct, acc), "application/json", False, "%s -> %r" % (ct, acc))
                    check_answers(got, want, False, "%s -> %r" % (ct, acc), len(Q))

            # The seed use case: CSV rows, accept="application/jsonlines; verbose=true", Accept case varies.
            got = decode(*srv.invoke(h.body_csv(Q[:1]), "text/csv", "application/jsonlines; verbose=True"),
                         "application/jsonlines", True, "seed")
            check_answers(got, want, True, "seed", 1)

            # curl, an independent HTTP client
            out = subprocess.run(["curl", "-sS", "-X", "POST", "http://127.0.0.1:%d/invocations" % srv.port,
                                  "-H", "Content-Type: application/json", "-H", "Accept: application/json; verbose=true",
                                  "--data-binary", h.body_json(Q)], capture_output=True, check=True)
            got = decode(200, {"content-type": "application/json"}, out.stdout, "application/json", True, "curl")
            check_answers(got, want, True, "curl", len(Q))
            out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                  "http://127.0.0.1:%d/ping" % srv.port], capture_output=True, check=True)
            h.check(out.stdout == b"200", "curl /ping: %r" % out.stdout)

            # /execution-parameters (spec 3.1, 8)
            status, _, body = srv.request("GET", "/execution-parameters")
            doc = json.loads(body) if status == 200 else {}
            h.check(doc.get("BatchStrategy") == "MULTI_RECORD" and doc.get("MaxPayloadInMB") == 6
                    and doc.get("MaxConcurrentTransforms", 0) >= 1, "/execution-parameters: %r" % body)

            # at KNN_LOG_LEVEL=debug, a line per request names method, path, status and rows
            h.check(re.search(r"POST /invocations 200 rows=6 ", srv.log_text()) is not None, "no access log line")

        # SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT decides a missing Accept; SAGEMAKER_BIND_TO_PORT the port.
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            free = s.getsockname()[1]
        with h.Server(model, tmp, env={"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/jsonlines",
                                       "SAGEMAKER_BIND_TO_PORT": str(free)}, port_flag=False) as srv:
            h.check(srv.port == free, "SAGEMAKER_BIND_TO_PORT=%d, but the server is on %r" % (free, srv.port))
            got = decode(*srv.invoke(h.body_csv(Q), "text/csv"), "application/jsonlines", False, "default accept")
            check_answers(got, want, False, "default accept", len(Q))

        # Other predictors and metrics: regressor over inner product, classifier over cosine.
        labels_r = rng.normal(size=N).astype(np.float32)
        for predictor, metric, labels in (("regressor", "INNER_PRODUCT", labels_r), ("classifier", "COSINE", LABELS)):
            mdir = h.make_model(os.path.join(tmp, "model-" + metric), X, labels, K, predictor, metric)
            w = h.brute_force(X, labels, Q, K, metric, predictor)
            with h.Server(mdir, tmp) as srv:
                got = decode(*srv.invoke(h.body_json(Q), "application/json", "application/json; verbose=true"),
                             "application/json", True, metric)
                check_answers(got, w, True, "%s %s" % (predictor, metric), len(Q))
    h.finish()


if __name__ == "__main__":
    main()
