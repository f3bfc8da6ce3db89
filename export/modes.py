"""Export vocabulary: formats, quantization modes, parsing them, the export config, artifact names.

One word per idea everywhere (flags, file names, manifests): formats ``tflite``/``onnx`` and modes
``none``/``float16``/``dynamic``/``int8``/``int16x8``. The file-name contract
``<model>_<mode>.<format>`` is written by :func:`artifact_name` and read back by
:func:`parse_artifact_name` / :func:`identify`, nowhere else. What each mode *means* (fallbacks,
known limits, parity thresholds) is in ``mode_rules``. This module imports nothing heavy.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from mnistkit.runtime.errors import UsageError
from mnistkit.runtime.manifest import manifest_path


class Format(str, Enum):
    """Target file format."""

    TFLITE = "tflite"
    ONNX = "onnx"

    @property
    def ext(self) -> str:
        """File extension without the dot."""
        return self.value


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
    """File name of an exported model, e.g. ``lstm_int8.tflite``."""
    return f"{model}_{Mode(mode).value}.{Format(fmt).ext}"


_NAME = re.compile(rf"^(?P<model>[a-z0-9]+)_(?P<mode>{'|'.join(MODES)})\.(?P<ext>{'|'.join(FORMATS)})$")


@dataclass(frozen=True)
class ArtifactName:
    """Which model, format and mode an exported file holds."""

    model: str
    format: Format
    mode: Mode

    @property
    def sort_key(self) -> tuple[str, int, int]:
        """Order of listings: by model, TFLite before ONNX, then modes none..int16x8."""
        return self.model, list(Format).index(self.format), list(Mode).index(self.mode)


def parse_artifact_name(name: str) -> ArtifactName | None:
    """Read ``<model>_<mode>.<format>`` (e.g. ``lstm_int8.tflite``); None when ``name`` is not one."""
    m = _NAME.match(name)
    return ArtifactName(m["model"], Format(m["ext"]), Mode(m["mode"])) if m else None


def identify(path: str | os.PathLike, manifest: dict | None = None) -> ArtifactName | None:
    """Which model, format and mode an exported file holds: its manifest, else its file name.

    Args:
        path: the exported file.
        manifest: its manifest if already read (None: read the one beside ``path``, if any).

    Returns:
        The identity, or None when neither the manifest nor the file name tells it.
    """
    path = Path(path)
    if manifest is None:
        try:
            manifest = json.loads(manifest_path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = None
    by_name = parse_artifact_name(path.name)
    if isinstance(manifest, dict) and manifest.get("mode") in MODES:
        fmt = manifest.get("format") if manifest.get("format") in FORMATS else path.suffix[1:]
        if fmt in FORMATS:
            model = manifest.get("model") or (by_name.model if by_name else path.stem)
            return ArtifactName(str(model), Format(fmt), Mode(manifest["mode"]))
    return by_name
