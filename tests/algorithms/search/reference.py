#!/usr/bin/python3
"""Independent references for the search tests (run with Debian's /usr/bin/python3).

    reference.py digits   OUTDIR K   scikit-learn's digits, split 70/30, KNeighborsClassifier(K)
    reference.py diabetes OUTDIR K   scikit-learn's diabetes, split 70/30, KNeighborsRegressor(K)
    reference.py dimred   OUTDIR TYPE INPUT_DIM TARGET_DIM SEED N
                                     the documented sign / fjlt construction (dimred.c, rng.h)
                                     in numpy, applied to N seeded Gaussian rows

Writes raw little-endian float32 files (train_x, train_y, test_x, test_y, or x, y) and meta.json
into OUTDIR. Python only computes the references; the C tests compute ours.
"""
import json
import os
import sys

import numpy as np


def write(outdir, name, a):
    np.ascontiguousarray(a, dtype="<f4").tofile(os.path.join(outdir, name))


def split_dataset(loader):
    from sklearn.model_selection import train_test_split

    x, y = loader(return_X_y=True)
    return train_test_split(x.astype(np.float32), y.astype(np.float32), test_size=0.3, random_state=0)


def digits(outdir, k):
    from sklearn.datasets import load_digits
    from sklearn.neighbors import KNeighborsClassifier

    xtr, xte, ytr, yte = split_dataset(load_digits)
    clf = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(xtr, ytr)
    acc = float((clf.predict(xte) == yte).mean())
    return xtr, ytr, xte, yte, {"accuracy": acc}


def diabetes(outdir, k):
    from sklearn.datasets import load_diabetes
    from sklearn.neighbors import KNeighborsRegressor

    xtr, xte, ytr, yte = split_dataset(load_diabetes)
    reg = KNeighborsRegressor(n_neighbors=k, algorithm="brute").fit(xtr, ytr)
    mse = float(((reg.predict(xte) - yte) ** 2).mean())
    return xtr, ytr, xte, yte, {"mse": mse}


# ---- the library's generator (rng.h): splitmix64 seeding xoshiro256** ----

M64 = (1 << 64) - 1


class Rng:
    def __init__(self, seed):
        st = seed & M64
        self.s = []
        for _ in range(4):
            st = (st + 0x9E3779B97F4A7C15) & M64
            z = st
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            self.s.append(z ^ (z >> 31))

    def next(self):
        s = self.s
        rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & M64
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(self, n):
        m = self.next() * n
        low = m & M64
        if low < n:
            threshold = ((1 << 64) - n) % n
            while low < threshold:
                m = self.next() * n
                low = m & M64
        return m >> 64


def signs(rng, n):
    out = np.empty(n)
    word = 0
    for e in range(n):
        if e % 64 == 0:
            word = rng.next()
        out[e] = 1.0 if (word >> (e % 64)) & 1 else -1.0
    return out


def dimred(kind, d, t, seed, x):
    rng = Rng(seed)
    if kind == "sign":
        r = signs(rng, d * t).reshape(d, t) / np.sqrt(t)
        return x.astype(np.float64) @ r
    dpad = 1
    while dpad < d:
        dpad *= 2
    dsig = signs(rng, dpad)
    perm = list(range(dpad))
    for i in range(t):
        j = i + rng.below(dpad - i)
        perm[i], perm[j] = perm[j], perm[i]
    keep = sorted(perm[:t])
    h = np.array([[1.0]])
    while h.shape[0] < dpad:
        h = np.block([[h, h], [h, -h]])
    xp = np.zeros((x.shape[0], dpad))
    xp[:, :d] = x
    return ((xp * dsig) @ h.T)[:, keep] / np.sqrt(t)


def main():
    cmd, outdir = sys.argv[1], sys.argv[2]
    if cmd in ("digits", "diabetes"):
        k = int(sys.argv[3])
        xtr, ytr, xte, yte, meta = (digits if cmd == "digits" else diabetes)(outdir, k)
        for name, a in (("train_x", xtr), ("train_y", ytr), ("test_x", xte), ("test_y", yte)):
            write(outdir, name, a)
        meta.update(n_train=len(xtr), n_test=len(xte), d=xtr.shape[1], k=k)
    elif cmd == "dimred":
        kind, d, t, seed, n = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
        x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
        write(outdir, "x", x)
        write(outdir, "y", dimred(kind, d, t, seed, x))
        meta = dict(n=n, d=d, t=t)
    else:
        sys.exit("unknown command " + cmd)
    with open(os.path.join(outdir, "meta.json"), "w") as f:
        json.dump(meta, f)


if __name__ == "__main__":
    main()
