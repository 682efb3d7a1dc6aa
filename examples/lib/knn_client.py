"""A minimal client of a SageMaker k-NN endpoint, with Python's urllib only.

It is independent of knn-runner's code on purpose: it speaks the HTTP contract SageMaker
documents (POST /invocations with Content-Type and Accept), so the same calls work against a
knn-runner endpoint, a local SageMaker container, or (with SigV4 signing added) a real endpoint.
"""
import json
import urllib.error
import urllib.request


def invoke(url, body, content_type, accept, timeout=60):
    """POST body (str or bytes) to url; returns the response body as text. Raises on non-200."""
    if isinstance(body, str):
        body = body.encode()
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": content_type, "Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read().decode()
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{url}: HTTP {e.code}: {e.read().decode(errors='replace')}") from None


def neighbours(url, vectors, verbose=True):
    """Ask for the neighbours of each vector (application/jsonlines in and out).

    Returns one dict per vector: predicted_label, and with verbose also labels and distances.
    """
    body = "".join(json.dumps({"features": [float(x) for x in v]}) + "\n" for v in vectors)
    accept = "application/jsonlines; verbose=true" if verbose else "application/jsonlines"
    text = invoke(url, body, "application/jsonlines", accept)
    answers = [json.loads(line) for line in text.splitlines() if line.strip()]
    if len(answers) != len(vectors):
        raise SystemExit(f"{url}: {len(answers)} answers for {len(vectors)} queries")
    return answers


def predict_csv(url, rows):
    """Predicted labels of CSV rows (features only), application/json out."""
    body = "\n".join(",".join(repr(float(x)) for x in r) for r in rows)
    out = json.loads(invoke(url, body, "text/csv", "application/json"))
    return [p["predicted_label"] for p in out["predictions"]]
