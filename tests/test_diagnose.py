"""Per-layer diagnosis (export/diagnose.py): it names the tensor where precision went."""

from __future__ import annotations

import numpy as np
import pytest

from mnistkit.export import diagnose
from mnistkit.export import recurrent_int8 as R


def _lstm(seed: int = 0) -> R.RecurrentModel:
    rng = np.random.default_rng(seed)
    d = R.Direction(rng.normal(0, 0.4, (28, 64)), rng.normal(0, 0.3, (16, 64)), rng.normal(0, 0.2, 64))
    return R.RecurrentModel(True, [d], rng.normal(0, 0.5, (16, 10)), rng.normal(0, 0.1, 10))


def test_a_healthy_recurrent_int8_graph_has_small_errors_everywhere():
    rm = _lstm()
    x = np.random.default_rng(1).random((32, 28, 28)).astype(np.float32)
    R.calibrate(rm, x)
    rows = diagnose.probe_errors(rm, x)
    by = {r["tensor"]: r for r in rows}
    assert {"d0/c", "d0/z", "d0/h", "d0/rec", "logits"} <= by.keys()
    assert by["d0/c"]["dtype"] == "int16" and by["d0/c"]["count"] == 27
    assert max(r["relative_rms"] for r in rows) < 0.1, diagnose.table(rows)


def test_a_cell_state_with_a_wrong_range_is_named_first():
    rm = _lstm()
    x = np.random.default_rng(1).random((32, 28, 28)).astype(np.float32)
    R.calibrate(rm, x)
    rm.directions[0].ranges["c"] /= 30  # as if calibration had seen a far smaller cell state: it saturates
    rows = diagnose.probe_errors(rm, x)
    assert rows[0]["tensor"] in ("d0/c", "d0/i*g", "d0/f*c"), diagnose.table(rows)
    assert rows[0]["relative_rms"] > 0.3
    assert "d0/c" in diagnose.worst_summary(rows)


def test_onnx_and_float_files_are_refused_with_a_reason():
    from mnistkit.runtime.errors import ExportError

    with pytest.raises(ExportError, match="quantized TFLite"):
        diagnose.layer_errors("unused.keras", "onnx", "int8")
    with pytest.raises(ExportError, match="quantized TFLite"):
        diagnose.layer_errors("unused.keras", "tflite", "none")


@pytest.mark.slow
def test_the_broken_rnn_int16x8_converter_file_is_traced_to_the_recurrent_step(mnist_dir):
    """TFLite's converter writes a SimpleRNN int16x8 file that agrees with Keras on ~10% of images."""
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "models" / "pretrained" / "rnn.keras"
    rows = diagnose.layer_errors(str(source), "tflite", "int16x8", data_dir=str(mnist_dir), count=32)
    assert "simple_rnn_cell" in rows[0]["tensor"] and rows[0]["relative_rms"] > 1, diagnose.table(rows)
    assert rows[0]["count"] == 28  # one copy per time step, grouped
