#!/usr/bin/python3
"""An independent check of our RecordIO-protobuf, with Debian's python3-protobuf.

The aialgs.data schema is built at run time from a descriptor written out here (no generated
files). The script
  1. decodes every SDK fixture with python's protobuf and compares it with the fixture's JSON (so
     this decoder is itself checked),
  2. runs `knn-runner recordio convert` fixture -> CSV -> RecordIO, decodes what we wrote with
     python's protobuf and compares the values with the JSON, and
  3. serializes the same rows with python's protobuf (SerializeToString + the SDK's framing) and
     requires our bytes to be identical.
Exit 0 on success, 1 with a message on the first difference.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

FDP = descriptor_pb2.FieldDescriptorProto
MAGIC = 0xCED7230A


def build_schema():
    f = descriptor_pb2.FileDescriptorProto(name="knn_check_record.proto", package="aialgs.data", syntax="proto2")

    def tensor(name, value_type):
        m = f.message_type.add(name=name)
        m.field.add(name="values", number=1, type=value_type, label=FDP.LABEL_REPEATED).options.packed = True
        m.field.add(name="keys", number=2, type=FDP.TYPE_UINT64, label=FDP.LABEL_REPEATED).options.packed = True
        m.field.add(name="shape", number=3, type=FDP.TYPE_UINT64, label=FDP.LABEL_REPEATED).options.packed = True

    tensor("Float32Tensor", FDP.TYPE_FLOAT)
    tensor("Float64Tensor", FDP.TYPE_DOUBLE)
    tensor("Int32Tensor", FDP.TYPE_INT32)
    b = f.message_type.add(name="Bytes")
    b.field.add(name="value", number=1, type=FDP.TYPE_BYTES, label=FDP.LABEL_REPEATED)
    b.field.add(name="content_type", number=2, type=FDP.TYPE_STRING, label=FDP.LABEL_OPTIONAL)
    v = f.message_type.add(name="Value")
    v.oneof_decl.add(name="value")
    for name, num, typ in (("float32_tensor", 2, "Float32Tensor"), ("float64_tensor", 3, "Float64Tensor"),
                           ("int32_tensor", 7, "Int32Tensor"), ("bytes", 9, "Bytes")):
        v.field.add(name=name, number=num, type=FDP.TYPE_MESSAGE, label=FDP.LABEL_OPTIONAL,
                    type_name=".aialgs.data." + typ, oneof_index=0)
    r = f.message_type.add(name="Record")
    for name, num, entry in (("features", 1, "FeaturesEntry"), ("label", 2, "LabelEntry")):
        e = r.nested_type.add(name=entry)
        e.options.map_entry = True
        e.field.add(name="key", number=1, type=FDP.TYPE_STRING, label=FDP.LABEL_OPTIONAL)
        e.field.add(name="value", number=2, type=FDP.TYPE_MESSAGE, label=FDP.LABEL_OPTIONAL,
                    type_name=".aialgs.data.Value")
        r.field.add(name=name, number=num, type=FDP.TYPE_MESSAGE, label=FDP.LABEL_REPEATED,
                    type_name=".aialgs.data.Record." + entry)
    for name, num in (("uid", 3), ("metadata", 4), ("configuration", 5)):
        r.field.add(name=name, number=num, type=FDP.TYPE_STRING, label=FDP.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName("aialgs.data.Record"))


Record = build_schema()


def read_frames(data):
    """Strict dmlc/SDK framing (the SDK never splits, so neither do we expect it)."""
    off = 0
    out = []
    while off < len(data):
        if len(data) - off < 8:
            raise ValueError(f"truncated header at {off}")
        magic, length = struct.unpack_from("<II", data, off)
        if magic != MAGIC or length >> 29:
            raise ValueError(f"bad frame at {off}")
        off += 8
        if off + length > len(data):
            raise ValueError(f"truncated record at {off - 8}")
        out.append(data[off:off + length])
        off += (length + 3) & ~3
    return out


def frame(payload):
    return struct.pack("<II", MAGIC, len(payload)) + payload + b"\0" * ((4 - len(payload) % 4) % 4)


def tensor_of(value):
    kind = value.WhichOneof("value")
    return getattr(value, kind)


def as_float32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def dense(t, width):
    if len(t.keys):
        row = [0.0] * width
        for k, v in zip(t.keys, t.values):
            row[k] = v
        return row
    if not len(t.values) and len(t.shape):
        return [0.0] * width
    return list(t.values)


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check_against_json(name, payloads, meta, float32_only=False):
    if len(payloads) != meta["rows"]:
        fail(f"{name}: {len(payloads)} records, expected {meta['rows']}")
    for i, (p, want) in enumerate(zip(payloads, meta["records"])):
        rec = Record()
        rec.ParseFromString(p)
        got = dense(tensor_of(rec.features["values"]), meta["cols"])
        exp = dense(type("T", (), {"keys": want.get("keys", []), "values": want["values"],
                                   "shape": want.get("shape", [])}), meta["cols"])
        exp = [as_float32(x) for x in exp] if float32_only else exp
        if got != exp:
            fail(f"{name} record {i}: features {got[:4]}... differ from {exp[:4]}...")
        if meta["has_label"]:
            lt = tensor_of(rec.label["values"])
            lw = as_float32(want["label"]) if float32_only else want["label"]
            if list(lt.values) != [lw]:
                fail(f"{name} record {i}: label {list(lt.values)}, expected {lw}")
        elif "values" in rec.label:
            fail(f"{name} record {i}: unexpected label")


def python_sdk_bytes(meta):
    """What the SDK writes for these rows as float32 (dense): python protobuf's own serialization."""
    out = bytearray()
    for want in meta["records"]:
        rec = Record()
        row = dense(type("T", (), {"keys": want.get("keys", []), "values": want["values"],
                                   "shape": want.get("shape", [])}), meta["cols"])
        rec.features["values"].float32_tensor.values.extend(row)
        if meta["has_label"]:
            rec.label["values"].float32_tensor.values.extend([want["label"]])
        out += frame(rec.SerializeToString())
    return bytes(out)


def main():
    fixtures = os.path.join(os.environ.get("KNN_FIXTURES_DIR", os.path.join(os.path.dirname(__file__), "..", "fixtures")),
                            "recordio")
    names = ["dense_f32_labels", "dense_f64_labels", "dense_int32", "dense_nolabels", "dense_f32_f64label_pad",
             "sparse_f32", "sparse_empty_rows_nolabels", "topics_like"]
    metas = {}
    for name in names:
        with open(os.path.join(fixtures, name + ".json")) as f:
            metas[name] = json.load(f)
        with open(os.path.join(fixtures, name + ".rec"), "rb") as f:
            check_against_json(name, read_frames(f.read()), metas[name])
    print(f"python protobuf decodes the {len(names)} SDK fixtures as their JSON says")

    runner = os.environ.get("KNN_RUNNER")
    if not runner:
        print("SKIP: KNN_RUNNER is not set (run through ctest)")
        sys.exit(103)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            meta = metas[name]
            csv = os.path.join(tmp, name + ".csv")
            rec = os.path.join(tmp, name + ".rec")
            subprocess.run([runner, "recordio", "convert", "--to", "csv", os.path.join(fixtures, name + ".rec"), csv],
                           check=True)
            subprocess.run([runner, "recordio", "convert", "--to", "recordio", "--label-size",
                            "1" if meta["has_label"] else "0", csv, rec], check=True)
            with open(rec, "rb") as f:
                ours = f.read()
            check_against_json(name + " (ours)", read_frames(ours), meta, float32_only=True)
            if ours != python_sdk_bytes(meta):
                fail(f"{name}: our RecordIO differs from python protobuf's serialization of the same rows")
            if meta["dtype"] == "float32" and not meta["sparse"] and meta.get("label_dtype", "float32") == "float32":
                with open(os.path.join(fixtures, name + ".rec"), "rb") as f:
                    if f.read() != ours:
                        fail(f"{name}: recordio -> csv -> recordio is not the SDK's file")
    print("python protobuf reads what knn-runner writes; bytes equal python's own serialization")


if __name__ == "__main__":
    main()
