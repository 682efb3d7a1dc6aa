"""Ask a k-NN endpoint for the documents most similar to held-out ones, and judge the answers.

    /usr/bin/python3 recommend.py DATA_DIR --url http://127.0.0.1:PORT/invocations --index NAME
                                  [--show CATEGORY,...] [--plot FILE.png]

DATA_DIR is what prepare.py wrote. The endpoint serves a model trained on train.csv with
labels = document ids, so the `labels` of a verbose answer are the ids of the neighbours.

Prints, for one test document of each --show category: the raw answer of the endpoint, the document's
text and its neighbours' texts. Then, over every test document (one batch request):
  - how often a neighbour has the test document's category, against the chance rate (the share
    of training documents in that category, averaged over the test documents);
  - recall@k against exact COSINE search computed here with scikit-learn (brute force);
  - the largest difference between the endpoint's distances and cosine similarities computed
    here for the same pairs.
With --plot, draws the topic distribution of the first shown document against its neighbours'
(bar charts, 1000 x 900 pixels PNG), as the tutorial does.
"""
import argparse
import json
import os
import sys
import textwrap

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import knn_client  # noqa: E402

PLOT_SIZE_PX = (1000, 900)


def load_csv(path):
    table = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    return table[:, 0].astype(np.int64), table[:, 1:]


def short(text, width):
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def ids_of(answer):
    ids = []
    for label in answer["labels"]:
        if label != int(label) or label < 0:
            raise SystemExit(f"recommend: label {label} is not a document id")
        ids.append(int(label))
    return ids


def plot(path, topics, query_id, neighbour_ids, sims, vectors_by_id, docs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [query_id] + neighbour_ids
    fig, axes = plt.subplots(len(rows), 1, sharex=True, sharey=True,
                             figsize=(PLOT_SIZE_PX[0] / 100, PLOT_SIZE_PX[1] / 100), dpi=100)
    x = np.arange(len(topics))
    for i, (ax, doc_id) in enumerate(zip(axes, rows)):
        color = "tab:red" if i == 0 else "tab:blue"
        ax.bar(x, vectors_by_id[doc_id], color=color)
        cat = docs[doc_id]["category"]
        title = (f"test document #{doc_id} ({cat})" if i == 0 else
                 f"neighbour {i}: #{doc_id} ({cat}), cosine similarity {sims[i - 1]:.3f}")
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_ylabel("weight", fontsize=8)
    axes[-1].set_xticks(x)
    axes[-1].set_xticklabels([f"{t}: {topics[t][0]} {topics[t][1]}" for t in x], rotation=90, fontsize=7)
    fig.suptitle("Topic distribution of a test document and of its k nearest neighbours (COSINE)", fontsize=10)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.93, bottom=0.17, hspace=0.6)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--url", required=True)
    ap.add_argument("--index", required=True, help="the index type, for the printed lines")
    ap.add_argument("--show", default="startrek,computers,food",
                    help="categories whose first short test document is shown ('' for none)")
    ap.add_argument("--plot")
    a = ap.parse_args()

    docs = [json.loads(line) for line in open(os.path.join(a.data, "docs.jsonl"))]
    topics = json.load(open(os.path.join(a.data, "topics.json")))
    train_ids, train_vecs = load_csv(os.path.join(a.data, "train.csv"))
    test_ids, test_vecs = load_csv(os.path.join(a.data, "test.csv"))
    vectors_by_id = {int(i): v for i, v in zip(train_ids, train_vecs)}
    vectors_by_id.update({int(i): v for i, v in zip(test_ids, test_vecs)})

    # A few test documents, one request each, as an application would: for each of the --show
    # categories, its first test document that is short enough to print and spread over at least
    # three topics (many one-liners sit in a single topic, which makes a dull plot).
    def showable(j):
        return len(docs[test_ids[j]]["text"]) <= 300 and int((test_vecs[j] >= 0.05).sum()) >= 3

    shown = []
    for cat in [c for c in a.show.split(",") if c]:
        shown += [j for j in range(len(test_ids)) if docs[test_ids[j]]["category"] == cat and showable(j)][:1]
    for n, j in enumerate(shown):
        doc = docs[test_ids[j]]
        answer = knn_client.neighbours(a.url, [test_vecs[j]])[0]
        if n == 0:
            print("POST /invocations  Content-Type: application/jsonlines  Accept: application/jsonlines; verbose=true")
            print(f'  request:  {{"features": [{", ".join("%.4g" % x for x in test_vecs[j][:4])}, ...]}}')
            print(f"  response: {json.dumps(answer)}")
        print(f"\ntest document #{doc['id']} ({doc['category']}):")
        print(textwrap.indent(textwrap.fill(" ".join(doc["text"].split()), 96), "    "))
        for rank, (nid, sim) in enumerate(zip(ids_of(answer), answer["distances"]), 1):
            nb = docs[nid]
            print(f"  {rank}. #{nid} ({nb['category']}, similarity {sim:.3f}): {short(nb['text'], 110)}")

    # Every test document in one batch request.
    answers = knn_client.neighbours(a.url, test_vecs)
    got = np.array([ids_of(x) for x in answers])
    dist = np.array([x["distances"] for x in answers], dtype=np.float64)
    k = got.shape[1]
    cats = np.array([d["category"] for d in docs])
    match = float((cats[got] == cats[test_ids][:, None]).mean())
    names, counts = np.unique(cats[train_ids], return_counts=True)
    share = dict(zip(names, counts / len(train_ids)))
    chance = float(np.mean([share.get(c, 0.0) for c in cats[test_ids]]))

    # The same search, done here: exact COSINE with scikit-learn.
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute")
    nn.fit(train_vecs.astype(np.float64))
    exact_dist, _ = nn.kneighbors(test_vecs.astype(np.float64))
    kth_sim = 1.0 - exact_dist[:, -1]
    unit = lambda m: m / np.linalg.norm(m, axis=-1, keepdims=True)  # noqa: E731
    sims = np.einsum("qd,qkd->qk", unit(test_vecs.astype(np.float64)),
                     unit(np.stack([[vectors_by_id[i] for i in row] for row in got]).astype(np.float64)))
    # Many short texts share one topic vector, so the k-th place is often a tie: a returned
    # neighbour is right when it is as similar as the exact k-th one (to 1e-6) and not repeated.
    right = [len(set(row[s >= t - 1e-6])) for row, s, t in zip(got, sims, kth_sim)]
    recall = float(np.mean(right)) / k
    sim_err = float(np.abs(sims - dist).max())

    print(f"\n{a.index} COSINE, {len(test_ids)} test documents, k={k}:")
    print(f"  category match: {match:.3f} of neighbours share the test document's category "
          f"(chance {chance:.3f}, {match / chance:.1f}x)")
    print(f"  recall@{k} against exact COSINE search (scikit-learn, ties counted): {recall:.3f}")
    print(f"  largest |endpoint distance - cosine similarity computed here|: {sim_err:.2e}")

    if a.plot:
        j = shown[0] if shown else 0
        plot(a.plot, topics, int(test_ids[j]), ids_of(answers[j]), answers[j]["distances"], vectors_by_id, docs)
        print(f"  plot: {a.plot} (topic distribution of test document #{test_ids[j]} and its {k} neighbours)")


if __name__ == "__main__":
    main()
