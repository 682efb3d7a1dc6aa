"""Turn the fortunes corpus into topic vectors, as SageMaker's content-recommendation tutorial does.

    /usr/bin/python3 prepare.py OUT_DIR [--topics 30] [--test-fraction 0.1] [--seed 7]

Reads every category file of Debian's `fortunes` package (/usr/share/games/fortunes/<category>.u8,
texts separated by lines holding a single "%"), keeps the texts of 20 to 1000 characters, and
embeds them as topic distributions: TF-IDF, then non-negative matrix factorization (NMF) from
scikit-learn, each row scaled to sum to 1. NMF stands in for the tutorial's Neural Topic Model;
any embedding would do.

Writes into OUT_DIR:
  train.csv    one document per line: its id, then its topic vector (SageMaker's
               text/csv;label_size=1 training format: the label is the document id)
  test.csv     the held-out documents, same layout (queries for the endpoint)
  docs.jsonl   {"id", "category", "text"} of every document
  topics.json  the top words of each topic

The label trick: k-NN returns the labels of the neighbours, so with label = document id the
`labels` of a verbose answer are the ids of the most similar documents. Labels are float32, which
holds every integer exactly only below 2**24 = 16,777,216: the ids are checked against that.
"""
import argparse
import glob
import json
import os
import re
import sys

import numpy as np
from sklearn.decomposition import NMF
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import train_test_split

CORPUS = "/usr/share/games/fortunes"
FLOAT32_EXACT_INTS = 2**24


def load_corpus(folder):
    docs, cats = [], []
    files = sorted(glob.glob(os.path.join(folder, "*.u8")))
    if not files:
        sys.exit(f"prepare: no fortunes in {folder}: install Debian's `fortunes` package (scripts/setup)")
    for path in files:
        category = os.path.basename(path)[: -len(".u8")]
        with open(path, encoding="utf-8", errors="replace") as f:
            for text in f.read().split("\n%\n"):
                # Some files underline with overstriking ("_\b" before a letter): keep the letters.
                text = re.sub(".\b", "", text).strip().strip("%").strip()
                if 20 <= len(text) <= 1000:
                    docs.append(text)
                    cats.append(category)
    return docs, cats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--topics", type=int, default=30)
    ap.add_argument("--test-fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--corpus", default=CORPUS)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    docs, cats = load_corpus(a.corpus)
    print(f"corpus: {len(docs)} texts in {len(set(cats))} categories from {a.corpus}")

    tfidf = TfidfVectorizer(stop_words="english", min_df=3, max_df=0.3, max_features=4000)
    counts = tfidf.fit_transform(docs)
    # tol 1e-3 stops NMF after ~40 iterations instead of ~80, with neighbours as good.
    nmf = NMF(n_components=a.topics, init="nndsvda", random_state=a.seed, max_iter=300, tol=1e-3)
    weights = nmf.fit_transform(counts)
    print(f"topics: NMF with {a.topics} topics over a vocabulary of {counts.shape[1]} words")

    # A text made only of stop words or rare words has no topic at all: it has no direction,
    # so COSINE similarity is undefined for it. Leave those out.
    total = weights.sum(axis=1)
    keep = np.flatnonzero(total > 0)
    dropped = len(docs) - len(keep)
    vectors = (weights[keep] / total[keep, None]).astype(np.float32)
    docs = [docs[i] for i in keep]
    cats = [cats[i] for i in keep]
    ids = np.arange(len(docs))
    if dropped:
        print(f"topics: {dropped} texts have no topic weight (no vocabulary word) and are left out")

    # Ids are labels, and labels are float32.
    if ids.max() >= FLOAT32_EXACT_INTS:
        sys.exit(f"prepare: document id {ids.max()} is not exact in float32 (ids must stay below 2**24)")
    assert np.array_equal(ids.astype(np.float32).astype(np.int64), ids)
    print(f"ids: 0..{ids.max()}, below 2**24 = {FLOAT32_EXACT_INTS}: every id is exact as a float32 label")

    train_ids, test_ids = train_test_split(ids, test_size=a.test_fraction, random_state=a.seed)
    for name, part in (("train", np.sort(train_ids)), ("test", np.sort(test_ids))):
        with open(os.path.join(a.out, f"{name}.csv"), "w") as f:
            for i in part:
                # %.9g prints each float32 so that it reads back to the same float32.
                f.write(str(int(i)) + "," + ",".join("%.9g" % v for v in vectors[i]) + "\n")
    print(f"split: {len(train_ids)} training documents, {len(test_ids)} held out (seed {a.seed})")

    with open(os.path.join(a.out, "docs.jsonl"), "w") as f:
        for i, (text, cat) in enumerate(zip(docs, cats)):
            f.write(json.dumps({"id": i, "category": cat, "text": text}) + "\n")
    words = tfidf.get_feature_names_out()
    topics = [[str(words[j]) for j in comp.argsort()[-6:][::-1]] for comp in nmf.components_]
    with open(os.path.join(a.out, "topics.json"), "w") as f:
        json.dump(topics, f, indent=1)
    for t, top in enumerate(topics[:8]):
        print(f"  topic {t:2d}: {' '.join(top)}")
    print(f"  ... ({a.topics} topics in topics.json)")


if __name__ == "__main__":
    main()
