"""Score a k-NN endpoint on a test CSV and compare it with the training job's #test_score and
with scikit-learn's k-NN on the same split.

    /usr/bin/python3 evaluate.py classifier|regressor DATA_DIR --url URL --job-score X

DATA_DIR is what prepare.py wrote. The test rows are sent as text/csv (features only, in batches
of 200 rows) and answered as application/json; the metric is computed here from the answers.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import knn_client  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["classifier", "regressor"])
    ap.add_argument("data")
    ap.add_argument("--url", required=True)
    ap.add_argument("--job-score", type=float, required=True)
    a = ap.parse_args()
    ref = json.load(open(os.path.join(a.data, "reference.json")))
    folder = "digits" if a.kind == "classifier" else "diabetes"
    table = np.loadtxt(os.path.join(a.data, folder, "test.csv"), delimiter=",", dtype=np.float32, ndmin=2)
    y, X = table[:, 0], table[:, 1:]
    pred = np.concatenate([knn_client.predict_csv(a.url, X[i:i + 200]) for i in range(0, len(X), 200)])

    if a.kind == "classifier":
        endpoint = float(np.mean(pred == y))
        sk = ref["accuracy"]
        print(f"digits classifier (k={ref['k_classifier']}), test accuracy on {len(y)} images:")
        print(f"  training job #test_score:                      {a.job_score:.4f}")
        print(f"  endpoint answers, scored here:                 {endpoint:.4f}")
        print(f"  scikit-learn KNeighborsClassifier, same split: {sk:.4f}")
        print(f"  the same neighbours, SageMaker's tie rule:     {ref['accuracy_sagemaker_ties']:.4f}"
              " (scikit-learn breaks ties by the smallest label)")
        print(f"  accuracy: job {a.job_score:.4f}, scikit-learn {sk:.4f}, difference {a.job_score - sk:+.4f}")
    else:
        endpoint = float(np.mean((pred - y.astype(np.float64)) ** 2))
        sk = ref["mse"]
        print(f"diabetes regressor (k={ref['k_regressor']}), test MSE on {len(y)} patients:")
        print(f"  training job #test_score:                     {a.job_score:.2f}")
        print(f"  endpoint answers, scored here:                {endpoint:.2f}")
        print(f"  scikit-learn KNeighborsRegressor, same split: {sk:.2f}")
        print(f"  mse: job {a.job_score:.2f}, scikit-learn {sk:.2f}, relative difference "
              f"{(a.job_score - sk) / sk:+.4f}")
    # The endpoint prints float32 predictions in their shortest form: allow that rounding.
    same = abs(endpoint - a.job_score) <= 1e-4 * abs(a.job_score) + 1e-9
    print(f"  endpoint vs job: {'same score' if same else 'DIFFERENT scores'}")


if __name__ == "__main__":
    main()
