"""Real test models for the runtime tests, built once per session (and cached between sessions).

Every model is made here with TensorFlow / tf2onnx, never in runtime code: zoo models trained for
one epoch on 2,000 MNIST images (the lstm untrained: only agreement matters for it), converted to
TFLite float32 / dynamic / full int8 (int8 and uint8 I/O; lstm int8) and to ONNX, plus a few broken ones:
input not 28x28, a full-int8 file that XNNPACK refuses (one weight zero point patched), truncated
files. ``tests/data/fused_lstm16.tflite`` (checked in) holds the stateful fused LSTM op.

The set is cached under pytest's cache dir, keyed by this file's hash and the TF version, so only
the first run pays (~20 s on 2 cores). Tests that need it are skipped when TensorFlow is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).with_name("data")
FUSED_LSTM = DATA / "fused_lstm16.tflite"
N_TRAIN = 2000
N_EVAL = 64

_BUILD = r'''
import os, sys, json
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
import keras
from mnistkit.models import zoo
from mnistkit.models.data import load_mnist, to_float

out = sys.argv[1]
keras.utils.set_random_seed(0)
mn = load_mnist(os.environ.get("MNISTKIT_DATA"))
x, y = to_float(mn.x_train[:N_TRAIN]), mn.y_train[:N_TRAIN]
np.save(f"{out}/x_eval.npy", mn.x_test[:N_EVAL])
np.save(f"{out}/y_eval.npy", mn.y_test[:N_EVAL])

def convert(model, path, mode="none", io=None):
    c = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode != "none":
        c.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "int8":
        c.representative_dataset = lambda: ([x[i:i + 1]] for i in range(100))
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        c.inference_input_type = c.inference_output_type = io
    with open(f"{out}/{path}", "wb") as f:
        f.write(c.convert())

def to_onnx(model, path, shape=(28, 28)):
    import tf2onnx
    spec = (tf.TensorSpec((None, *shape), tf.float32, name="image"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=13, output_path=f"{out}/{path}")

mlp = zoo.build("mlp")
mlp.compile("adam", "sparse_categorical_crossentropy")
mlp.fit(x, y, epochs=1, batch_size=64, verbose=0)
convert(mlp, "mlp_none.tflite")
convert(mlp, "mlp_dynamic.tflite", "dynamic")
convert(mlp, "mlp_int8.tflite", "int8", tf.int8)
convert(mlp, "mlp_uint8.tflite", "int8", tf.uint8)
to_onnx(mlp, "mlp_none.onnx")
fixed = zoo.build("mlp", batch_size=1)
fixed.set_weights(mlp.get_weights())
convert(fixed, "mlp_fixed1.tflite")

lstm = zoo.build("lstm")
convert(zoo.unrolled_clone(lstm), "lstm_none.tflite")
convert(zoo.unrolled_clone(lstm), "lstm_int8.tflite", "int8", tf.int8)
to_onnx(lstm, "lstm_none.onnx")

inp = keras.Input((32, 32), name="image")
wide = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inp)))
convert(wide, "wide32_none.tflite")
to_onnx(wide, "wide32_none.onnx", (32, 32))
'''


def _patch_zero_point(src: Path, dst: Path) -> None:
    """Copy a full-int8 model, giving one per-channel weight tensor a non-zero zero point.

    XNNPACK refuses per-channel int8 weights with a non-zero zero point when it prepares the
    graph; TFLite's built-in kernels ignore weight zero points (they are 0 by construction), so the
    patched file gives the same answers on the built-in kernels.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(src.read_bytes()), 0)
    graph = model.subgraphs[0]
    fc = next(op for op in graph.operators
              if model.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.FULLY_CONNECTED)
    weights = graph.tensors[fc.inputs[1]]
    zp = np.array(weights.quantization.zeroPoint)
    zp[0] = 3
    weights.quantization.zeroPoint = zp.tolist()
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dst.write_bytes(bytes(builder.Output()))


def _key() -> str:
    import importlib.metadata as md

    text = Path(__file__).read_bytes() + md.version("tensorflow-cpu" if _has("tensorflow-cpu")
                                                     else "tensorflow").encode()
    return hashlib.sha256(text).hexdigest()[:16]


def _has(dist: str) -> bool:
    import importlib.metadata as md

    try:
        md.version(dist)
        return True
    except md.PackageNotFoundError:
        return False


def build_models(out: Path, mnist_dir: Path) -> None:
    """Build every test model into ``out`` (in a child process: TF never enters the test process)."""
    out.mkdir(parents=True, exist_ok=True)
    code = _BUILD.replace("N_TRAIN", str(N_TRAIN)).replace("N_EVAL", str(N_EVAL))
    env = {**os.environ, "MNISTKIT_DATA": str(mnist_dir)}
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True,
                          env=env, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"building test models failed:\n{proc.stderr[-3000:]}")
    _patch_zero_point(out / "mlp_int8.tflite", out / "mlp_xnnpack_refused.tflite")
    content = (out / "mlp_int8.tflite").read_bytes()
    (out / "mlp_truncated.tflite").write_bytes(content[: len(content) // 3])
    onnx = (out / "mlp_none.onnx").read_bytes()
    (out / "mlp_truncated.onnx").write_bytes(onnx[: len(onnx) // 3])
    (out / "garbage.tflite").write_bytes(b"\x00\x01not a model" * 100)
    shutil.copy(FUSED_LSTM, out / "fused_lstm16.tflite")


def write_manifest(model: Path, sha256: str | None = None) -> Path:
    """Write a minimal contract manifest beside ``model`` (its real sha256 unless one is given)."""
    digest = sha256 or hashlib.sha256(model.read_bytes()).hexdigest()
    path = model.with_name(model.name + ".json")
    path.write_text(json.dumps({"artifact": {"file": model.name, "sha256": digest,
                                             "size_bytes": model.stat().st_size},
                                "format": model.suffix[1:], "mode": "int8", "model": "mlp"}))
    return path


@pytest.fixture(scope="session")
def rt_models(request, tmp_path_factory, mnist_dir) -> Path:
    """Folder holding the runtime test models (see module docstring)."""
    import importlib.util

    for module in ("tensorflow", "tf2onnx"):  # find, never import: TF stays out of this process
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"building the runtime test models needs {module}")
    cache = getattr(request.config, "cache", None)
    root = Path(cache.mkdir("mnistkit-runtime-models")) if cache else tmp_path_factory.mktemp("rt")
    folder = root / _key()
    if not (folder / "done").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        build_models(folder, mnist_dir)
        (folder / "done").write_text("ok")
    return folder


@pytest.fixture(scope="session")
def eval_images(rt_models) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (64, 28, 28), labels (64,)) from the MNIST test set."""
    return np.load(rt_models / "x_eval.npy"), np.load(rt_models / "y_eval.npy")


@pytest.fixture
def model_copy(rt_models, tmp_path):
    """Return a function copying a test model into a fresh folder (for manifests, edits)."""

    def copy(name: str) -> Path:
        dst = tmp_path / name
        shutil.copy(rt_models / name, dst)
        return dst

    return copy
