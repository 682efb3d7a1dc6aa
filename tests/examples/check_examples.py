"""Check what an example printed (its stdout.txt in OUT_DIR) and the files it made.

    check_examples.py NAME OUT_DIR

Every figure is read from the example's printed lines, the way a user reads them, and held to
floors that a broken pipeline would miss: neighbours better than chance by a margin, exact search
agreeing with scikit-learn, accuracy above a floor and within a margin of scikit-learn's, a valid
PNG of the announced size.
"""
import os
import re
import struct
import sys
import zlib

failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def find(pattern, text, what):
    m = re.search(pattern, text, re.M)
    if not m:
        print(f"FAIL  {what}: no line matches {pattern!r}")
        failures.append(what)
    return m


def png_size(path):
    """(width, height) of a PNG after checking its signature, IHDR chunk (with CRC) and IEND."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG signature")
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        raise ValueError("the first chunk is not a 13-byte IHDR")
    body = data[16:29]
    (crc,) = struct.unpack(">I", data[29:33])
    if zlib.crc32(kind + body) != crc:
        raise ValueError("IHDR CRC mismatch")
    if data[-12:] != b"\x00\x00\x00\x00IEND\xaeB`\x82":
        raise ValueError("no IEND chunk at the end")
    width, height, depth, color = struct.unpack(">IIBB", body[:10])
    if depth != 8 or color not in (2, 6):
        raise ValueError(f"unexpected bit depth {depth} / color type {color}")
    return width, height


def content_recommendation(out, text):
    check("every id is exact as a float32 label" in text, "document ids checked against 2**24")
    m = find(r"^ids: 0\.\.(\d+), below 2\*\*24", text, "ids line")
    if m:
        check(int(m.group(1)) < 2**24, f"largest id {m.group(1)} < 2**24")
    check(text.count("Training job content-recommendation-") == 2 and text.count(": Completed") >= 2,
          "both training jobs completed")
    check('"labels": [' in text and '"distances": [' in text, "a raw verbose JSON Lines answer is shown")
    shown = re.findall(r"^test document #\d+ \((\w[\w-]*)\):", text, re.M)
    check(shown == ["startrek", "computers", "food"], f"three test documents shown with neighbours ({shown})")
    check(len(re.findall(r"^  [1-5]\. #\d+ \([\w-]+, similarity [01]\.\d{3}\): ", text, re.M)) == 15,
          "five neighbours with texts for each shown document")
    for index, min_recall in (("faiss.Flat", 0.99), ("faiss.IVFFlat", 0.80)):
        block = text.split(f"\n{index} COSINE,", 1)
        if len(block) != 2:
            check(False, f"{index}: results printed")
            continue
        block = block[1]
        m = find(r"category match: ([0-9.]+) of neighbours share .*\(chance ([0-9.]+),", block, f"{index} match")
        if m:
            match, chance = float(m.group(1)), float(m.group(2))
            check(0.01 < chance < 0.2, f"{index}: chance rate {chance} is plausible for 43 categories")
            check(match >= 2.5 * chance, f"{index}: neighbours share the category {match} >= 2.5 x chance {chance}")
        m = find(r"recall@5 against exact COSINE search \(scikit-learn, ties counted\): ([0-9.]+)", block,
                 f"{index} recall")
        if m:
            check(float(m.group(1)) >= min_recall, f"{index}: recall@5 {m.group(1)} >= {min_recall}")
            # The README shows a run's output: its recall is the one this (deterministic) run prints.
            readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "examples", "content-recommendation",
                                       "README.md")).read().split(f"\n{index} COSINE,", 1)
            shown = re.search(r"recall@5 against exact COSINE search \(scikit-learn, ties counted\): ([0-9.]+)",
                              readme[1] if len(readme) == 2 else "")
            check(shown is not None and shown.group(1) == m.group(1),
                  f"{index}: the README shows the recall the run prints ({shown and shown.group(1)} vs {m.group(1)})")
        m = find(r"largest \|endpoint distance - cosine similarity computed here\|: ([0-9.e+-]+)", block,
                 f"{index} distances")
        if m:
            check(float(m.group(1)) < 1e-5, f"{index}: distances are cosine similarities ({m.group(1)})")
    m = find(r"plot: (\S+\.png) ", text, "plot line")
    if m:
        path = m.group(1)
        check(os.path.dirname(os.path.abspath(path)) == os.path.abspath(out), f"the plot {path} is in {out}")
        try:
            size = png_size(path)
            check(size == (1000, 900), f"the plot is a valid 1000 x 900 PNG ({size[0]} x {size[1]})")
        except (OSError, ValueError) as e:
            check(False, f"the plot {path} is a valid PNG ({e})")


def digits(out, text):
    jobs = re.findall(r"^Training job (digits-classifier|diabetes-regressor): Completed$", text, re.M)
    check(jobs == ["digits-classifier", "diabetes-regressor"], f"both training jobs completed ({jobs})")
    m = find(r"^\[.*\] #test_score \(algo-1\) : \('accuracy', ([0-9.eE+-]+)\)$", text, "accuracy log line")
    log_accuracy = float(m.group(1)) if m else None
    m = find(r"accuracy: job ([0-9.]+), scikit-learn ([0-9.]+), difference", text, "accuracy comparison")
    if m and log_accuracy is not None:
        job, sk = float(m.group(1)), float(m.group(2))
        check(abs(job - log_accuracy) < 1e-4, f"the compared accuracy {job} is the job log's {log_accuracy}")
        check(log_accuracy >= 0.95, f"digits accuracy {log_accuracy} >= 0.95")
        check(sk >= 0.95, f"scikit-learn's digits accuracy {sk} >= 0.95")
        check(abs(log_accuracy - sk) <= 0.02, f"accuracy within 0.02 of scikit-learn's ({log_accuracy} vs {sk})")
        import numpy as np
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        X, y = load_digits(return_X_y=True)
        Xtr, Xte, ytr, yte = train_test_split(X.astype(np.float32), y, test_size=0.3, random_state=0, stratify=y)
        vote = vote_accuracy(Xtr, ytr, Xte, yte, 5)
        check(abs(log_accuracy - vote) <= 0.002,
              f"accuracy {log_accuracy} is the vote over scikit-learn's neighbours, computed here ({vote:.4f})")
    m = find(r"^\[.*\] #test_score \(algo-1\) : \('mse', ([0-9.eE+-]+)\)$", text, "mse log line")
    log_mse = float(m.group(1)) if m else None
    m = find(r"mse: job ([0-9.]+), scikit-learn ([0-9.]+), relative difference", text, "mse comparison")
    v = find(r"\(the variance of the test targets: ([0-9.]+)\)", text, "target variance")
    if m and v and log_mse is not None:
        job, sk, var = float(m.group(1)), float(m.group(2)), float(v.group(1))
        check(abs(job - log_mse) <= 0.01, f"the compared MSE {job} is the job log's {log_mse}")
        check(log_mse < 0.85 * var, f"diabetes MSE {log_mse} well below the targets' variance {var}")
        check(abs(log_mse - sk) <= 0.02 * sk, f"MSE within 2% of scikit-learn's ({log_mse} vs {sk})")
    same = re.findall(r"^  endpoint vs job: (.*)$", text, re.M)
    check(same == ["same score", "same score"], f"the endpoints score as the jobs did ({same})")


def vote_accuracy(Xtr, ytr, Xte, yte, k):
    """Accuracy of SageMaker k-NN's documented vote, computed here: scikit-learn's exact L2
    neighbours, the most frequent label, ties going to the label met first in distance order.
    (scikit-learn's KNeighborsClassifier breaks ties by the smallest label instead.)"""
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    _, rows = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(Xtr).kneighbors(Xte)
    right = 0
    for r, truth in zip(rows, yte):
        labels = list(ytr[r])
        best = max(labels.count(v) for v in labels)
        right += next(v for v in labels if labels.count(v) == best) == truth
    return right / len(yte)


def manifests(out, text):
    import glob
    import json

    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    here = os.path.join(os.environ["KNN_SOURCE_DIR"], "examples", "manifests")
    names = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(here, "*.json")))
    readme = open(os.path.join(here, "README.md")).read()
    rows = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[0] in names:
            rows[parts[0]] = line
    metric = {}
    for name in names:
        check(f"\n## {name}.json" in readme, f"README.md has a section for {name}.json")
        line = rows.get(name, "")
        check(" Completed " in line, f"{name}.json: the job completed ({line.strip() or 'no line'})")
        m = re.search(r"test:(accuracy|mse)=([0-9.]+)", line)
        if m:
            metric[name] = float(m.group(2))

    # References computed here, on the same data: the split of examples/digits/prepare.py.
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    sk_acc = vote_accuracy(Xtr, ytr, Xte, yte, 5)
    reg = KNeighborsRegressor(n_neighbors=3, algorithm="brute").fit(Xtr, ytr.astype(np.float32))
    sk_mse = float(np.mean((reg.predict(Xte) - yte) ** 2))
    wine = np.loadtxt(os.path.join(os.environ["KNN_SOURCE_DIR"], "examples", "data", "wine.csv"), delimiter=",")
    wx = wine[:, 1:].astype(np.float32)
    sk_wine = vote_accuracy(wx, wine[:, 0], wx, wine[:, 0], 5)
    floors = {  # name: (reference, largest difference) or a floor alone
        "local-s3-endpoint": (sk_acc, 0.005), "manifest-file": (sk_acc, 0.005), "csv-input": (sk_wine, 0.005),
        "ivfflat-cosine": 0.95, "ivfpq-l2": 0.90, "dimension-reduction-sign": 0.90,
        "dimension-reduction-fjlt": 0.90, "sharded-two-workers": 0.95,
        # Inner product on raw pixels favours bright images: worse, but far above chance (0.1).
        "flat-inner-product": 0.5,
    }
    for name, rule in floors.items():
        if name not in metric:
            check(False, f"{name}.json: a test accuracy is printed")
        elif isinstance(rule, tuple):
            check(abs(metric[name] - rule[0]) <= rule[1],
                  f"{name}.json: accuracy {metric[name]} within {rule[1]} of the vote over scikit-learn's "
                  f"neighbours, {rule[0]:.4f}")
        else:
            check(metric[name] >= rule, f"{name}.json: accuracy {metric[name]} >= {rule}")
    if "test-channel-regressor" in metric:
        check(abs(metric["test-channel-regressor"] - sk_mse) <= 0.02 * sk_mse,
              f"test-channel-regressor.json: MSE {metric['test-channel-regressor']} within 2% of "
              f"scikit-learn's {sk_mse:.4f}")
    check(" hosts 2 " in rows.get("sharded-two-workers", "") and "rows sampled  1000" in rows.get(
        "sharded-two-workers", ""), "sharded-two-workers.json: two hosts sampled 500 rows each")
    check("reduction fjlt to 24" in rows.get("dimension-reduction-fjlt", ""), "fjlt reduction reported")

    # The /opt/ml layout.
    check(re.search(r"^Training job knn-training-job: Completed$", text, re.M) is not None,
          "the container-mode job completed")
    check("model files: model_algo-1 model_algo-1.json model_algo-1.labels" in text,
          "the container-mode job wrote the three model files")
    m = find(r"^(\{\"predictions\": .*\})$", text, "container-mode model served")
    if m:
        answer = json.loads(m.group(1))
        want = KNeighborsClassifier(n_neighbors=5, algorithm="brute").fit(wine[:, 1:], wine[:, 0]).predict(
            wine[:1, 1:])[0]
        check(answer == {"predictions": [{"predicted_label": want}]},
              f"the served model classifies the first wine as scikit-learn does, class {want:g} ({m.group(1)})")


CHECKS = {
    "content-recommendation": content_recommendation,
    "digits": digits,
    "manifests": manifests,
}


def main():
    name, out = sys.argv[1], sys.argv[2]
    text = open(os.path.join(out, "stdout.txt")).read()
    CHECKS[name](out, text)
    if failures:
        sys.exit(f"check_examples {name}: {len(failures)} check(s) failed")
    print(f"check_examples {name}: all checks passed")


if __name__ == "__main__":
    main()
