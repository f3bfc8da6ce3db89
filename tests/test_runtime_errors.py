"""Bad models and bad arguments give typed, one-line, actionable errors (never a crash)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _fixtures_runtime import model_copy, rt_models, write_manifest  # noqa: F401
from mnistkit.runtime import Classifier
from mnistkit.runtime.errors import IntegrityError, ModelError, UsageError


@pytest.mark.parametrize("name", ["mlp_truncated.tflite", "mlp_truncated.onnx", "garbage.tflite"])
def test_corrupt_model(rt_models, name):
    with pytest.raises(ModelError, match="not a valid .* model") as info:
        Classifier.load(rt_models / name)
    assert "\n" not in str(info.value) and name in str(info.value)


@pytest.mark.parametrize("name", ["wide32_none.tflite", "wide32_none.onnx"])
def test_input_not_28x28(rt_models, name):
    with pytest.raises(ModelError, match=r"\(N, 32, 32\), not 28x28"):
        Classifier.load(rt_models / name)


def test_missing_empty_and_unknown_files(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        Classifier.load(tmp_path / "nope.tflite")
    (tmp_path / "empty.tflite").write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        Classifier.load(tmp_path / "empty.tflite")
    (tmp_path / "model.bin").write_bytes(b"12345678")
    with pytest.raises(ModelError, match="neither a .tflite nor an .onnx"):
        Classifier.load(tmp_path / "model.bin")
    with pytest.raises(ModelError, match="directory"):
        Classifier.load(tmp_path)


def test_random_byte_flips_never_crash(rt_models, tmp_path):
    """Damaged files load, or fail with ModelError, and never kill the process or leak raw errors."""
    import subprocess
    import sys

    code = """
import sys, random, numpy as np
from mnistkit.runtime import Classifier
from mnistkit.runtime.errors import ModelError
src = open(sys.argv[1], "rb").read()
rng = random.Random(7)
for k in range(40):
    b = bytearray(src)
    for _ in range(8):
        b[rng.randrange(0, 4096 if k % 2 else len(b))] = rng.randrange(256)
    open(sys.argv[2], "wb").write(b)
    try:
        Classifier.load(sys.argv[2]).predict_proba(np.zeros((3, 28, 28), np.float32))
    except ModelError:
        pass
print("survived")
"""
    proc = subprocess.run([sys.executable, "-c", code, str(rt_models / "mlp_int8.tflite"),
                           str(tmp_path / "fz.tflite")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "survived" in proc.stdout, proc.stderr[-2000:]


def test_manifest_checked(model_copy):
    path = model_copy("mlp_int8.tflite")
    write_manifest(path)
    clf = Classifier.load(path)
    assert clf.manifest["artifact"]["file"] == "mlp_int8.tflite"
    write_manifest(path, sha256="0" * 64)
    with pytest.raises(IntegrityError, match="does not match its manifest"):
        Classifier.load(path)
    write_manifest(path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte in the model is enough
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="re-export"):
        Classifier.load(path)
    path.with_name(path.name + ".json").write_text("{not json")
    with pytest.raises(IntegrityError, match="unreadable"):
        Classifier.load(path)
    path.with_name(path.name + ".json").write_text(json.dumps({"artifact": {}}))
    with pytest.raises(IntegrityError, match="no artifact.sha256"):
        Classifier.load(path)


def test_unknown_and_mismatched_backend(rt_models):
    with pytest.raises(UsageError, match="unknown backend 'pytorch'; choose one of: litert"):
        Classifier.load(rt_models / "mlp_none.tflite", backend="pytorch")
    with pytest.raises(UsageError, match="cannot run .onnx models"):
        Classifier.load(rt_models / "mlp_none.onnx", backend="litert")
    assert Classifier.load(rt_models / "mlp_none.tflite", backend="ai-edge-litert").backend == "litert"


def test_predict_proba_rejects_wrong_shapes(rt_models):
    clf = Classifier.load(rt_models / "mlp_none.tflite")
    with pytest.raises(UsageError, match=r"\(N, 28, 28\)"):
        clf.predict_proba(np.zeros((2, 32, 32), np.float32))
    assert clf.predict_proba(np.zeros((0, 28, 28), np.float32)).shape == (0, 10)
    assert clf.predict_proba(np.zeros((28, 28), np.float32)).shape == (1, 10)


def test_structural_check_for_unverified_interpreters(rt_models):
    """tflite-runtime does not verify flatbuffers (a damaged file can SIGSEGV it): we check first."""
    from mnistkit.runtime.tflite_check import check_tflite

    for path in rt_models.glob("*.tflite"):
        if path.name in ("mlp_truncated.tflite", "garbage.tflite"):
            continue
        check_tflite(path.read_bytes(), path.name)  # every sound model passes, fused LSTM included
    src = (rt_models / "mlp_int8.tflite").read_bytes()
    for cut in (7, 100, 1000, 20_000, 60_000, len(src) - 200):
        with pytest.raises(ModelError, match="not a valid TFLite model"):
            check_tflite(src[:cut], "cut.tflite")
    bad = bytearray(src)
    bad[4:8] = b"XXXX"
    with pytest.raises(ModelError, match="TFL3"):
        check_tflite(bytes(bad), "bad.tflite")
