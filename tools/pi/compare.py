"""The parity rule shared by the Pi check and the matrix: same labels, probabilities within tolerance."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mnistkit.export.modes import identify

FLOAT_ATOL = 1e-5
QUANT_STEPS = 3
#: Quantized models whose output tensor is float (dynamic range, or int8/int16x8 with float I/O)
#: have no output scale; their step is taken as that of an int8-quantized probability in [0, 1].
FLOAT_OUTPUT_STEP = 1 / 256
#: Spacing of float16 values in [0.5, 1): ONNX float16 graphs compute in float16.
FLOAT16_STEP = 2.0 ** -11
QUANTIZED_MODES = frozenset({"dynamic", "int8", "int16x8"})


def tolerance(describe: dict | None, mode: str | None = None, fmt: str | None = None,
              steps: float = QUANT_STEPS) -> tuple[str, float]:
    """The allowed max |difference| of probabilities between two runs of one model.

    - integer output tensor: ``("quantized", 3 * output scale)`` (scale read by the interpreter);
    - quantized model with a float output (``mode`` dynamic/int8/int16x8): ``("quantized-float-out",
      3 / 256)``, three steps of an int8-quantized probability;
    - ONNX float16 models, which compute in float16: ``("float16-compute", 3 * 2**-11)``, three
      float16 steps just below 1.0 (measured: a CNN's probabilities differ by 4.7e-5 between x86_64
      and aarch64 onnxruntime, labels identical). TFLite float16 files only store float16 weights
      and compute in float32, so they keep 1e-5;
    - float32 / TFLite float16 models: ``("float", 1e-5)``.

    Args:
        describe: ``Classifier.describe()`` of the model on the reference runtime.
        mode: the export mode (none, float16, dynamic, int8, int16x8) from the manifest or file name.
        fmt: "tflite" or "onnx".
        steps: how many quantization (or float16) steps to allow (default 3).
    """
    q = (describe or {}).get("output_quantization")
    if q:
        return "quantized", steps * float(q[0])
    if mode in QUANTIZED_MODES:
        return "quantized-float-out", steps * FLOAT_OUTPUT_STEP
    if mode == "float16" and fmt == "onnx":
        return "float16-compute", steps * FLOAT16_STEP
    return "float", FLOAT_ATOL


def artifact_mode(path: str | Path) -> str | None:
    """The export mode of an artifact: its manifest's ``mode``, else the ``<model>_<mode>`` file name."""
    ident = identify(path)
    return ident.mode.value if ident else None


@dataclass(frozen=True)
class Parity:
    """How one run compares with the reference run on the same images."""

    ok: bool
    labels_ok: bool
    within_tolerance: bool
    images: int
    label_mismatches: int
    max_abs_diff: float
    atol: float
    kind: str

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)

    def summary(self) -> str:
        """E.g. ``"500/500 labels, max|dp| 3.1e-07 <= 1e-05"``."""
        same = self.images - self.label_mismatches
        sign = "<=" if self.max_abs_diff <= self.atol else ">"
        return f"{same}/{self.images} labels, max|dp| {self.max_abs_diff:.1e} {sign} {self.atol:.0e}"


def compare_runs(reference: np.ndarray, other: np.ndarray, kind: str, atol: float) -> Parity:
    """Compare two (N, 10) probability arrays: labels must match exactly, values within ``atol``."""
    reference, other = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    if reference.shape != other.shape:
        return Parity(False, False, False, len(reference), len(reference), float("inf"), atol, kind)
    mismatches = int((reference.argmax(1) != other.argmax(1)).sum())
    diff = float(np.abs(reference - other).max()) if reference.size else 0.0
    return Parity(mismatches == 0 and diff <= atol, mismatches == 0, diff <= atol, len(reference), mismatches,
                  diff, atol, kind)
