"""Building the JSON manifest written beside every exported file.

Where it goes (``<artifact file>.json``) and how a device reads and verifies it is
``mnistkit.runtime.manifest``; this module only builds and writes it.

It records where the file came from (sha256 of artifact and source), what it is (format, mode,
input/output dtypes and quantization parameters, operator census with the quantized share, how
calibration images were drawn), the tool versions, and the parity figures against the source.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
from pathlib import Path
from typing import Any

from mnistkit.export.modes import ExportConfig, Format
from mnistkit.models.artifacts import sha256_file, tool_versions, write_json_atomic
from mnistkit.models.source import SourceModel
from mnistkit.runtime.manifest import manifest_path

SCHEMA_VERSION = 1
TOOLS = (
    "mnistkit", "tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime",
    "onnxconverter-common", "ai-edge-litert", "tflite-micro", "numpy",
)


def build(
    *, artifact: Path, final_name: str, source: SourceModel, config: ExportConfig,
    info: dict[str, Any], parity: dict[str, Any], seconds: float, notes: list[str],
) -> dict[str, Any]:
    """Assemble the manifest of one exported file.

    Args:
        artifact: the file as it is now (hashed and measured here).
        final_name: the file name it is published under.
        source: the Keras source model.
        config: the export config.
        info: ``inspect_file()`` output plus 'calibration' and 'graph' (from the worker).
        parity: parity figures of the file against the source.
        seconds: conversion wall time.
        notes: plain-language remarks (what stayed float and why, size surprises); the graph note
            is added here.

    Returns:
        A JSON-ready dict following the project's manifest contract.
    """
    ops = info["ops"]
    notes = list(notes)
    if info.get("graph") == "unrolled":
        notes.append("recurrent layer converted through an unrolled clone (same weights, plain ops)")
    elif info.get("graph") == "loop":
        notes.append("recurrent layer written as a WHILE loop from the trained weights: int8 weights, int16 "
                     "gate pre-activations and state (LSTM: int8 h, int32 products, int16 cell; SimpleRNN: "
                     "int16 h); export/recurrent_int8.py")
    out: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "artifact": {"file": final_name, "sha256": sha256_file(artifact), "size_bytes": artifact.stat().st_size},
        "format": config.format.value,
        "mode": config.mode.value,
        "model": source.name,
        "source": {"file": str(source.path), "sha256": source.sha256},
        "graph": info.get("graph", "as-is"),
        "input": info["input"],
        "output": info["output"],
        "ops": ops,
        "notes": notes,
        "calibration": info.get("calibration", {}),
        "conversion_seconds": round(seconds, 2),
        "versions": tool_versions(*TOOLS),
        "parity": parity,
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if "opset" in info:
        out["opset"] = info["opset"]
    if "tflm" in info:
        out["tflm"] = info["tflm"]
    if "layer_errors" in info:  # worst intermediate tensors against float (export/diagnose.py)
        out["layer_errors"] = info["layer_errors"]
    if config.format is Format.TFLITE:
        out["compat"] = _tflite_compat(artifact)
    return out


def _tflite_compat(artifact: Path) -> dict[str, Any]:
    from mnistkit.export.compat import tflite_runtime_compat

    try:
        return {"tflite_runtime_2_14": tflite_runtime_compat(artifact).to_manifest()}
    except Exception as exc:  # an informational check must not fail an export
        return {"tflite_runtime_2_14": {"error": f"{type(exc).__name__}: {exc}"[:200]}}


def write(manifest: dict[str, Any], artifact: str | os.PathLike) -> Path:
    """Write ``manifest`` atomically beside ``artifact``; returns the manifest path.

    The manifest gets the artifact's permission bits (the atomic writer's temp files are 0600).
    """
    path = write_json_atomic(manifest_path(Path(artifact)), manifest)
    with contextlib.suppress(OSError):
        os.chmod(path, Path(artifact).stat().st_mode & 0o777)
    return path
