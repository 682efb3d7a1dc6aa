"""Two real data sets from scikit-learn, split and written as SageMaker k-NN training CSV.

    /usr/bin/python3 prepare.py OUT_DIR [--seed 0]

digits   (sklearn.datasets.load_digits: 1797 8x8 images of handwritten digits, 64 features,
          classes 0-9; Alpaydin & Kaynak, UCI): a classifier
diabetes (sklearn.datasets.load_diabetes: 442 patients, 10 standardized features, disease
          progression after one year; Efron et al. 2004): a regressor

Each is split 70/30 (seeded; digits stratified by class) into OUT_DIR/<set>/train.csv and
test.csv, one row per line, the label first (SageMaker's text/csv;label_size=1), each value
printed with %.9g so that it reads back as the same float32. scikit-learn's own k-NN on the same
split (KNeighborsClassifier / KNeighborsRegressor, brute-force Euclidean, uniform weights, the
same k as the jobs) is scored here and written to OUT_DIR/reference.json for the comparison.
"""
import argparse
import json
import os

import numpy as np
from sklearn.datasets import load_diabetes, load_digits
from sklearn.metrics import accuracy_score, mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

# The jobs' k (examples/digits/job-*.json): keep in step.
K_CLASSIFIER = 5
K_REGRESSOR = 10


def write_csv(path, X, y):
    with open(path, "w") as f:
        for label, row in zip(y, X):
            f.write("%.9g," % label + ",".join("%.9g" % v for v in row) + "\n")


def vote(labels):
    """The most frequent label; a tie goes to the label met first (the nearest)."""
    labels = list(labels)
    best = max(labels.count(v) for v in labels)
    return next(v for v in labels if labels.count(v) == best)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    ref = {}

    # float32 throughout: what the jobs see.
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=a.seed, stratify=y)
    os.makedirs(os.path.join(a.out, "digits"), exist_ok=True)
    write_csv(os.path.join(a.out, "digits", "train.csv"), Xtr, ytr)
    write_csv(os.path.join(a.out, "digits", "test.csv"), Xte, yte)
    clf = KNeighborsClassifier(n_neighbors=K_CLASSIFIER, algorithm="brute").fit(Xtr, ytr)
    ref["accuracy"] = accuracy_score(yte, clf.predict(Xte))
    # scikit-learn breaks a tie between labels by the smallest label; SageMaker k-NN by the label
    # met first in distance order. The same neighbours with SageMaker's rule:
    _, rows = clf.kneighbors(Xte)
    ref["accuracy_sagemaker_ties"] = float(np.mean([vote(ytr[r]) == t for r, t in zip(rows, yte)]))
    print(f"digits:   {len(ytr)} training and {len(yte)} test images of {X.shape[1]} pixels, classes 0-9")
    print(f"          scikit-learn KNeighborsClassifier(k={K_CLASSIFIER}) test accuracy: {ref['accuracy']:.4f}"
          f" ({ref['accuracy_sagemaker_ties']:.4f} with SageMaker's tie rule)")

    X, y = load_diabetes(return_X_y=True)
    X, y = X.astype(np.float32), y.astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=a.seed)
    os.makedirs(os.path.join(a.out, "diabetes"), exist_ok=True)
    write_csv(os.path.join(a.out, "diabetes", "train.csv"), Xtr, ytr)
    write_csv(os.path.join(a.out, "diabetes", "test.csv"), Xte, yte)
    reg = KNeighborsRegressor(n_neighbors=K_REGRESSOR, algorithm="brute").fit(Xtr, ytr)
    ref["mse"] = float(mean_squared_error(yte, reg.predict(Xte)))
    print(f"diabetes: {len(ytr)} training and {len(yte)} test patients, {X.shape[1]} features")
    print(f"          scikit-learn KNeighborsRegressor(k={K_REGRESSOR}) test MSE: {ref['mse']:.2f}"
          f" (the variance of the test targets: {float(np.var(yte)):.2f})")

    ref["k_classifier"], ref["k_regressor"] = K_CLASSIFIER, K_REGRESSOR
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)


if __name__ == "__main__":
    main()
