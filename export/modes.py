"""Export vocabulary: formats, quantization modes, the export config and artifact names.

One word per idea everywhere (flags, file names, manifests): formats ``tflite``/``onnx`` and modes
``none``/``float16``/``dynamic``/``int8``/``int16x8``. This module imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from mnistkit.runtime.errors import UsageError


class Format(str, Enum):
    """Target file format."""

    TFLITE = "tflite"
    ONNX = "onnx"
    #: a batch-1, full-int8 .tflite for TensorFlow Lite Micro, with C sources (export/tflm.py).
    TFLM = "tflm"

    @property
    def ext(self) -> str:
        """File extension without the dot."""
        return "tflite" if self is Format.TFLM else self.value


class Mode(str, Enum):
    """Quantization mode.

    none: float32. float16: float16 weights. dynamic: int8 weights, float activations.
    int8: weights and activations int8, calibrated (TFLite: int8 input and output).
    int16x8: int16 activations and int8 weights, calibrated.
    """

    NONE = "none"
    FLOAT16 = "float16"
    DYNAMIC = "dynamic"
    INT8 = "int8"
    INT16X8 = "int16x8"

    @property
    def calibrated(self) -> bool:
        """Whether the mode needs a representative (calibration) dataset."""
        return self in (Mode.INT8, Mode.INT16X8)


MODES: tuple[str, ...] = tuple(m.value for m in Mode)
FORMATS: tuple[str, ...] = tuple(f.value for f in Format)
#: What ``--format all`` means: the file formats every mode exports to (tflm is int8-only, asked by name).
ALL_FORMATS: tuple[Format, ...] = (Format.TFLITE, Format.ONNX)
#: The only modes a format accepts, where it restricts them.
FORMAT_MODES: dict[Format, tuple[Mode, ...]] = {Format.TFLM: (Mode.INT8,)}

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
    if Format(fmt) is Format.TFLM:
        return ("TFLite Micro runs full int8 only: if parity failed, try another --calibration-samples or --seed; "
                "for a CPU or Raspberry Pi target use --format tflite")
    alts = [m.value for m in FALLBACKS[Mode(mode)] if (model, Format(fmt), m) not in KNOWN_LIMITS]
    if not alts:
        return "report this model; no alternative mode is known"
    return "use --quantize " + " or --quantize ".join(alts[:2]) + " instead"


@dataclass(frozen=True)
class ExportConfig:
    """What to export and how.

    Attributes:
        format: target format.
        mode: quantization mode.
        calibration_samples: training images used to calibrate int8/int16x8 (ignored otherwise).
        seed: seed of the stratified draw of calibration images.
        data_dir: MNIST folder (None: MNISTKIT_DATA or the Keras cache).
    """

    format: Format
    mode: Mode
    calibration_samples: int = 200
    seed: int = 0
    data_dir: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "format", parse_format(self.format))
        object.__setattr__(self, "mode", parse_mode(self.mode))
        if not isinstance(self.calibration_samples, int) or self.calibration_samples < 1:
            raise UsageError(
                f"calibration samples must be a positive integer, got {self.calibration_samples!r}; "
                "pass e.g. --calibration-samples 200"
            )
        allowed = FORMAT_MODES.get(self.format)
        if allowed and self.mode not in allowed:
            raise UsageError(
                f"--format {self.format.value} exports full int8 only (microcontroller kernels), not "
                f"--quantize {self.mode.value}; use --quantize int8 or leave --quantize out"
            )
        if self.calibration_samples > 60000:
            raise UsageError("calibration samples cannot exceed the 60,000 training images")


def parse_format(value: str | Format) -> Format:
    """Return the Format named ``value`` or raise UsageError listing the choices."""
    try:
        return Format(value)
    except ValueError:
        raise UsageError(f"unknown format {value!r}; choose one of: {', '.join(FORMATS)}") from None


def parse_mode(value: str | Mode) -> Mode:
    """Return the Mode named ``value`` or raise UsageError listing the choices."""
    try:
        return Mode(value)
    except ValueError:
        raise UsageError(f"unknown quantization mode {value!r}; choose one of: {', '.join(MODES)}") from None


def artifact_name(model: str, fmt: Format | str, mode: Mode | str) -> str:
    """File name of an exported model, e.g. ``lstm_int8.tflite`` or ``cnn_int8_tflm.tflite``."""
    fmt = Format(fmt)
    suffix = "_tflm" if fmt is Format.TFLM else ""
    return f"{model}_{Mode(mode).value}{suffix}.{fmt.ext}"


def manifest_name(artifact_file: str) -> str:
    """File name of the manifest beside an artifact, e.g. ``lstm_int8.tflite.json``."""
    return f"{artifact_file}.json"
