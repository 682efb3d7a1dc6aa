#!/usr/bin/python3
"""The anchor for bench/recordio: python3-protobuf (Debian, C++ backend) decoding the same file
into float32 rows the way a Python training script would: frame, ParseFromString, copy the
values into a numpy batch. Prints MB/s and rows/s (best of `--repeat` runs, default 1)."""
import mmap
import os
import struct
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../tests/recordio"))
from check_python_protobuf import Record  # the schema built at run time, no generated files

MAGIC = 0xCED7230A


def decode(data):
    rows = 0
    off = 0
    n = len(data)
    batch = None
    labels = np.empty(1024, dtype=np.float32)
    fill = 0
    rec = Record()
    while off < n:
        magic, length = struct.unpack_from("<II", data, off)
        if magic != MAGIC:
            raise ValueError(f"bad magic at {off}")
        length &= (1 << 29) - 1
        off += 8
        rec.ParseFromString(data[off:off + length])
        off += (length + 3) & ~3
        values = rec.features["values"].float32_tensor.values
        if batch is None:
            batch = np.empty((1024, len(values)), dtype=np.float32)
        batch[fill] = values
        labels[fill] = rec.label["values"].float32_tensor.values[0]
        fill += 1
        if fill == 1024:
            fill = 0
        rows += 1
    return rows


def main():
    repeat = 1
    args = sys.argv[1:]
    if args[:1] == ["--repeat"]:
        repeat = int(args[1])
        args = args[2:]
    for path in args:
        with open(path, "rb") as f:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            best = None
            for _ in range(repeat):
                t0 = time.perf_counter()
                rows = decode(data)
                dt = time.perf_counter() - t0
                best = dt if best is None or dt < best else best
            size = len(data)
            print(f"{os.path.basename(path):28s} python3-protobuf {size / 1048576:8.1f} MiB  {rows:9d} rows"
                  f"  {size / best / 1e6:8.1f} MB/s  {rows / best:10.0f} rows/s")


if __name__ == "__main__":
    main()
