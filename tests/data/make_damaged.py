"""Build the tiny damaged model files in tests/data/damaged/ (run once; the outputs are committed).

    python tests/data/make_damaged.py

Each file is a minimal reproducer of one class of damage the fuzzing pass found (issue 15), made
from two tiny valid models: a TFLite one (28x28 -> 4x4 average pool -> Dense(10) softmax, ~2 KB)
and an ONNX one (28x28 -> mean of 16 row groups -> MatMul(49x10) softmax) built with onnx.helper. The damage is a byte-level edit at a
position found by walking the file's structure, so the files stay otherwise sound.
``output_shape_lies.onnx`` is a fuzzer find, made by
``python -m mnistkit.tools.fuzz --repro onnx tests/data/damaged/tiny_ok.onnx 555``.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("damaged")


def tiny_tflite() -> bytes:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    inp = keras.Input((28, 28), name="image")
    x = keras.layers.Reshape((28, 28, 1))(inp)
    x = keras.layers.AveragePooling2D(4)(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inp, out, name="tiny")
    rng = np.random.default_rng(0)
    model.layers[-1].set_weights([rng.normal(0, 1, (49, 10)).astype(np.float32),
                                  np.arange(10, dtype=np.float32) * 0.125])
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def tiny_onnx(dim_param: str = "batchdim", weight_fill: float | None = None) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, (49, 10)).astype(np.float32)
    if weight_fill is not None:
        w[:] = weight_fill
    nodes = [helper.make_node("Reshape", ["image", "shape"], ["rows"]),
             helper.make_node("ReduceMean", ["rows"], ["flat"], axes=[1], keepdims=0),
             helper.make_node("MatMul", ["flat", "w"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [dim_param, 28, 28])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [dim_param, 10])],
        [numpy_helper.from_array(np.array([-1, 16, 49], np.int64), "shape"),
         numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _walk(content: bytes):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from mnistkit.runtime.flatbuffer import Reader

    r = Reader(content)
    model = r.root()
    return r, model


def input_tensor(content: bytes):
    r, model = _walk(content)
    sub = r.tables(model, 2)[0]
    return r, r.tables(sub, 0)[r.ints(sub, 1)[0]]


def damage_name(content: bytes) -> bytes:
    r, t = input_tensor(content)
    start, _ = r.vector(t, 3, 1)
    b = bytearray(content)
    b[start] = 0xFF  # the input tensor's name is no longer UTF-8
    return bytes(b)


def damage_empty_shape(content: bytes) -> bytes:
    r, t = input_tensor(content)
    b = bytearray(content)
    for field in (0, 7):  # shape and shape_signature become empty vectors
        start, _ = r.vector(t, field, 4)
        if start:
            b[start - 4:start] = struct.pack("<I", 0)
    return bytes(b)


def damage_op_code(content: bytes) -> bytes:
    r, model = _walk(content)
    b = bytearray(content)
    for code in r.tables(model, 1):
        deprecated, builtin = r.field(code, 0), r.field(code, 3)
        if deprecated is not None and builtin is not None:
            b[deprecated] = 127  # an op number no interpreter knows (both code fields agree)
            b[builtin:builtin + 4] = struct.pack("<i", 127)
            return bytes(b)
    raise SystemExit("no op code with both code fields")


def damage_nan_bias(content: bytes) -> bytes:
    bias = (np.arange(10, dtype=np.float32) * 0.125).tobytes()
    at = content.find(bias)
    assert at > 0, "bias not found"
    return content[:at] + np.full(10, np.nan, np.float32).tobytes() + content[at + len(bias):]


def damage_huge_tensor(content: bytes) -> bytes:
    r, model = _walk(content)
    sub = r.tables(model, 2)[0]
    inputs = set(r.ints(sub, 1))
    b = bytearray(content)
    for i, t in enumerate(r.tables(sub, 0)):
        start, n = r.vector(t, 0, 4)
        if i not in inputs and n >= 2 and r.uint(t, 2) == 0 or (i not in inputs and n >= 2 and
                                                                   not r.vector(r.tables(model, 4)[r.uint(t, 2)], 0, 1)[1]):
            b[start + 4:start + 8] = struct.pack("<i", 1 << 22)  # dimension 1 of an activation
            return bytes(b)
    raise SystemExit("no activation tensor found")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    base = tiny_tflite()
    files = {
        "tiny_ok.tflite": base,
        "name_not_utf8.tflite": damage_name(base),
        "empty_input_shape.tflite": damage_empty_shape(base),
        "unknown_op.tflite": damage_op_code(base),
        "nan_bias.tflite": damage_nan_bias(base),
        "huge_tensor.tflite": damage_huge_tensor(base),
        "tiny_ok.onnx": tiny_onnx(),
        "dim_param_not_utf8.onnx": tiny_onnx().replace(b"batchdim", b"\xffatchdim"),
        "nan_weights.onnx": tiny_onnx(weight_fill=float("nan")),
    }
    for name, data in files.items():
        (OUT / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
