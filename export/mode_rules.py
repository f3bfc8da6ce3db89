"""What each quantization mode means, keyed by ``Mode``: what to try instead when it fails, the
combinations known not to work and why, why it leaves some ops in float32, and the parity
thresholds an exported file must meet.

The converter settings of a mode live with its format (``tflite.py`` / ``onnx.py``), since they are
the format's API; everything else a mode implies is here. Adding a mode: add it to ``Mode`` in
``modes.py``, give it a row in every table below, then teach each format's ``convert``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mnistkit.export.modes import MODES, Format, Mode
from mnistkit.runtime.errors import UsageError

# What to try instead when a mode fails for a model, most faithful first.
FALLBACKS: dict[Mode, tuple[Mode, ...]] = {
    Mode.NONE: (),
    Mode.FLOAT16: (Mode.NONE,),
    Mode.DYNAMIC: (Mode.FLOAT16, Mode.NONE),
    Mode.INT8: (Mode.DYNAMIC, Mode.FLOAT16),
    Mode.INT16X8: (Mode.INT8, Mode.DYNAMIC),
}

# Known, measured reasons why a combination cannot be delivered: (model, format, mode) -> why.
KNOWN_LIMITS: dict[tuple[str, Format, Mode], str] = {
    ("rnn", Format.TFLITE, Mode.INT16X8): (
        "TFLite's int16x8 kernels mis-compute the unrolled SimpleRNN (it converts cleanly but "
        "classifies almost at random)"
    ),
}


# Why a mode leaves some weighted ops in float32: (format, op or "*", mode) -> explanation.
FLOAT_OP_HINTS: dict[tuple[Format, str, str], str] = {
    (Format.ONNX, "LSTM", "int8"): (
        "onnxruntime's static quantizer has no int8 LSTM, so this file is mostly float32; "
        "--quantize dynamic stores the LSTM as DynamicQuantizeLSTM with int8 weights"
    ),
    (Format.ONNX, "LSTM", "int16x8"): (
        "onnxruntime's static quantizer has no int16 LSTM, so this file is mostly float32; "
        "--quantize dynamic stores the LSTM as DynamicQuantizeLSTM with int8 weights"
    ),
    (Format.TFLITE, "*", "dynamic"): "TFLite dynamic-range quantization skips weight tensors under 1,024 values",
}


def suggestion(model: str, fmt: Format, mode: Mode) -> str:
    """One phrase naming what to use instead of a failing combination."""
    alts = [m.value for m in FALLBACKS[Mode(mode)] if (model, Format(fmt), m) not in KNOWN_LIMITS]
    if not alts:
        return "report this model; no alternative mode is known"
    return "use --quantize " + " or --quantize ".join(alts[:2]) + " instead"


@dataclass(frozen=True)
class Thresholds:
    """Parity pass criteria; None disables a criterion.

    Attributes:
        min_agreement: minimum top-1 agreement, as a fraction (1.0 = every image).
        max_delta_p: maximum |p_artifact - p_source| over every image and class.
        max_accuracy_delta_pp: maximum |accuracy difference| in percentage points.
    """

    min_agreement: float | None = None
    max_delta_p: float | None = None
    max_accuracy_delta_pp: float | None = None


# Default parity thresholds: float32 must match exactly (to 1e-4), float16 nearly, the int modes within
# 0.2 pp of accuracy and 99.5% agreement.
DEFAULT_THRESHOLDS: dict[Mode, Thresholds] = {
    Mode.NONE: Thresholds(min_agreement=1.0, max_delta_p=1e-4),
    Mode.FLOAT16: Thresholds(min_agreement=0.9995),
    Mode.DYNAMIC: Thresholds(min_agreement=0.995, max_accuracy_delta_pp=0.2),
    Mode.INT8: Thresholds(min_agreement=0.995, max_accuracy_delta_pp=0.2),
    Mode.INT16X8: Thresholds(min_agreement=0.995, max_accuracy_delta_pp=0.2),
}


def thresholds_for(mode: Mode | str, overrides: dict[str, float | None] | None = None) -> Thresholds:
    """Default thresholds of ``mode`` with any non-None ``overrides`` (field name -> value) applied.

    Raises:
        UsageError: ``mode`` is not a quantization mode.
    """
    if mode not in MODES:
        raise UsageError(f"unknown quantization mode {mode!r}; choose one of: {', '.join(MODES)}")
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    return replace(DEFAULT_THRESHOLDS[Mode(mode)], **changes)
