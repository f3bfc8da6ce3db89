"""Fast tests of export vocabulary, calibration draw and child-exit naming."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest

from mnistkit.export.base import calibration_indices, graph_kind
from mnistkit.export.mode_rules import KNOWN_LIMITS, suggestion
from mnistkit.export.modes import ExportConfig, Format, Mode, artifact_name, identify, parse_artifact_name
from mnistkit.runtime.manifest import manifest_path
from mnistkit.export.worker import exit_reason
from mnistkit.runtime.errors import UsageError


def test_names_follow_the_contract():
    assert artifact_name("lstm", "tflite", "int8") == "lstm_int8.tflite"
    assert artifact_name("cnn", Format.ONNX, Mode.NONE) == "cnn_none.onnx"
    assert manifest_path(Path("e/lstm_int8.tflite")) == Path("e/lstm_int8.tflite.json")
    assert [m.value for m in Mode] == ["none", "float16", "dynamic", "int8", "int16x8"]


def test_config_validation():
    cfg = ExportConfig("onnx", "int8", calibration_samples=50)
    assert cfg.format is Format.ONNX and cfg.mode is Mode.INT8 and cfg.mode.calibrated
    for bad in (0, -1, 60001):
        with pytest.raises(UsageError):
            ExportConfig("tflite", "int8", calibration_samples=bad)
    with pytest.raises(UsageError, match="unknown format"):
        ExportConfig("coreml", "none")
    with pytest.raises(UsageError, match="unknown quantization mode"):
        ExportConfig("tflite", "int4")


def test_calibration_draw_is_stratified_seeded_and_unique(mnist):
    idx = calibration_indices(mnist.y_train, 200, seed=0)
    assert len(idx) == 200 and len(set(idx.tolist())) == 200
    assert np.bincount(mnist.y_train[idx], minlength=10).tolist() == [20] * 10
    assert np.array_equal(idx, calibration_indices(mnist.y_train, 200, seed=0))
    assert not np.array_equal(np.sort(idx), np.sort(calibration_indices(mnist.y_train, 200, seed=1)))
    counts = np.bincount(mnist.y_train[calibration_indices(mnist.y_train, 13, seed=3)], minlength=10)
    assert counts.sum() == 13 and counts.min() >= 1 and counts.max() == 2


def test_suggestions_skip_known_broken_modes():
    assert ("rnn", Format.TFLITE, Mode.INT16X8) in KNOWN_LIMITS
    assert suggestion("rnn", Format.TFLITE, Mode.INT16X8) == "use --quantize int8 or --quantize dynamic instead"
    assert "dynamic" in suggestion("lstm", Format.ONNX, Mode.INT8)


def test_graph_kind():
    assert graph_kind("lstm", Format.TFLITE) == "unrolled"
    assert graph_kind("lstm", Format.TFLITE, Mode.INT8) == "loop"
    assert graph_kind("rnn", Format.TFLITE, Mode.INT16X8) == "unrolled"
    assert graph_kind("cnn", Format.TFLITE, Mode.INT8) == "as-is"
    assert graph_kind("lstm", Format.ONNX) == "as-is"
    assert graph_kind("rnn", Format.ONNX) == "unrolled"
    assert graph_kind("cnn", Format.TFLITE) == "as-is"


def test_exit_reason():
    assert exit_reason(-signal.SIGSEGV) == "SIGSEGV"
    assert exit_reason(-signal.SIGKILL) == "SIGKILL"
    assert exit_reason(3) == "exit code 3"


def test_file_names_read_back():
    name = parse_artifact_name("bilstm_int16x8.onnx")
    assert (name.model, name.format, name.mode) == ("bilstm", Format.ONNX, Mode.INT16X8)
    for bad in ("model.tflite", "cnn_int4.tflite", "cnn_int8.keras", "cnn_int8.tflite.json", "CNN_none.onnx"):
        assert parse_artifact_name(bad) is None, bad
    listing = ["mlp_int8.onnx", "cnn_none.tflite", "mlp_none.tflite", "mlp_dynamic.tflite", "mlp_none.onnx"]
    ordered = sorted(listing, key=lambda n: parse_artifact_name(n).sort_key)
    assert ordered == ["cnn_none.tflite", "mlp_none.tflite", "mlp_dynamic.tflite", "mlp_none.onnx", "mlp_int8.onnx"]


def test_identify_prefers_the_manifest(tmp_path):
    art = tmp_path / "renamed.tflite"
    assert identify(art) is None  # no manifest, name not <model>_<mode>
    manifest_path(art).write_text(json.dumps({"model": "lstm", "format": "tflite", "mode": "int8"}))
    assert identify(art) == parse_artifact_name("lstm_int8.tflite")
    named = tmp_path / "cnn_none.onnx"
    manifest_path(named).write_text("{not json")  # an unreadable manifest falls back to the name
    assert identify(named).mode is Mode.NONE
    assert identify(named, {"mode": "float16"}).mode is Mode.FLOAT16
