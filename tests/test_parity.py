"""Fast tests of the parity figures and thresholds (real numpy arithmetic on constructed outputs)."""

from __future__ import annotations

import numpy as np
import pytest

from mnistkit.runtime.errors import ModelError, UsageError
from mnistkit.export import mode_rules, parity


def _onehot(labels, conf=0.9):
    p = np.full((len(labels), 10), (1 - conf) / 9, np.float32)
    p[np.arange(len(labels)), labels] = conf
    return p


def test_identical_outputs_pass_float32_thresholds():
    labels = np.arange(2000) % 10
    src = _onehot(labels)
    r = parity.compare(src, src.copy(), labels, artifact="m_none.tflite", mode="none")
    assert r.passed and r.agreement == 1.0 and r.max_delta_p == 0.0 and r.disagreements == 0
    assert r.source_accuracy == r.artifact_accuracy == 1.0
    assert r.recall_delta_pp == [0.0] * 10


def test_tiny_drift_fails_float32_but_not_float16():
    labels = np.arange(1000) % 10
    src = _onehot(labels)
    art = src + np.float32(5e-4)
    assert not parity.compare(src, art, labels, artifact="a", mode="none").passed
    assert "max |delta p|" in parity.compare(src, art, labels, artifact="a", mode="none").failures[0]
    assert parity.compare(src, art, labels, artifact="a", mode="float16").passed


def test_disagreements_accuracy_delta_and_recall():
    labels = np.arange(2000) % 10
    src = _onehot(labels)
    wrong = labels.copy()
    wrong[[3, 13, 23, 33]] = 0  # four class-3 images now predicted 0
    r = parity.compare(src, _onehot(wrong), labels, artifact="a", mode="int8")
    assert r.disagreeing_indices == [3, 13, 23, 33]
    assert r.agreement == pytest.approx(0.998)
    assert r.accuracy_delta_pp == pytest.approx(-0.2)
    assert r.passed  # exactly 0.2 pp is within a 0.2 pp limit
    assert r.recall_delta_pp[3] == pytest.approx(-2.0) and r.recall_delta_pp[0] == 0.0
    wrong[43] = 0
    r = parity.compare(src, _onehot(wrong), labels, artifact="a", mode="int8")
    assert not r.passed and any("delta accuracy" in f for f in r.failures)


def test_agreement_threshold_and_override():
    labels = np.arange(1000) % 10
    src = _onehot(labels)
    art_labels = labels.copy()
    art_labels[:10] = (labels[:10] + 1) % 10  # 99.0% agreement
    art = _onehot(art_labels)
    r = parity.compare(src, art, labels, artifact="a", mode="dynamic")
    assert not r.passed and any("agreement 99.00%" in f for f in r.failures)
    th = mode_rules.thresholds_for("dynamic", {"min_agreement": 0.98, "max_accuracy_delta_pp": 2.0})
    assert parity.compare(src, art, labels, artifact="a", mode="dynamic", thresholds=th).passed


def test_default_thresholds_match_the_issue():
    assert mode_rules.DEFAULT_THRESHOLDS["none"] == mode_rules.Thresholds(1.0, 1e-4, None)
    assert mode_rules.DEFAULT_THRESHOLDS["float16"].min_agreement == 0.9995
    for mode in ("dynamic", "int8", "int16x8"):
        assert mode_rules.DEFAULT_THRESHOLDS[mode] == mode_rules.Thresholds(0.995, None, 0.2)
    with pytest.raises(UsageError):
        mode_rules.thresholds_for("int4")


def test_shape_mismatch_is_a_model_error():
    labels = np.arange(10)
    with pytest.raises(ModelError):
        parity.compare(_onehot(labels), np.zeros((10, 5), np.float32), labels, artifact="a", mode="none")


def test_check_line_and_report():
    labels = np.arange(100) % 10
    r = parity.compare(_onehot(labels), _onehot(labels), labels, artifact="cnn_int8.tflite", mode="int8")
    r.size_bytes = 2048
    line = parity.check_line(r, 0.25)
    assert line.startswith("cnn_int8.tflite: acc 100.00% -> 100.00%") and line.endswith("PASS")
    assert "2.0 KB (0.25x float32)" in line and "\n" not in line
    md = parity.markdown_report([r], "runs/cnn/model.keras")
    assert "| cnn_int8.tflite | int8 |" in md and "## Disagreeing test indices" in md


def test_artifact_mode_from_manifest_or_name(tmp_path):
    assert parity.artifact_mode(tmp_path / "x.tflite", {"mode": "float16"}) == "float16"
    assert parity.artifact_mode(tmp_path / "bilstm_int16x8.onnx", None) == "int16x8"
    with pytest.raises(UsageError):
        parity.artifact_mode(tmp_path / "model.tflite", None)
