"""What the Pi check and the matrix run on: the artifacts of an export folder and MNIST test images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mnistkit.export.modes import parse_artifact_name
from mnistkit.tools.pi.common import StepError, checkout_root

def find_artifacts(folder: Path) -> list[Path]:
    """Every ``<model>_<mode>.tflite|onnx`` in ``folder`` (by model, then TFLite before ONNX, then mode none..int16x8).

    Raises:
        StepError: the folder does not exist or holds no artifact.
    """
    if not folder.is_dir():
        raise StepError("artifacts", f"{folder} is not a folder; pass an export folder (e.g. exports/)")
    found = sorted((p for p in folder.iterdir() if parse_artifact_name(p.name)),
                   key=lambda p: parse_artifact_name(p.name).sort_key)
    if not found:
        raise StepError("artifacts", f"no <model>_<mode>.tflite/.onnx files in {folder}; run `mnistkit export` first")
    return found


def mnist_images(count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` MNIST test images as float32 (N, 28, 28) in [0, 1], and their labels."""
    from mnistkit.models.data import load_mnist, to_float

    data_dir = os.environ.get("MNISTKIT_DATA") or str(checkout_root().parent / "shared" / "data" / "mnist")
    try:
        mnist = load_mnist(data_dir)
    except Exception as exc:  # noqa: BLE001 - DataError and friends: say which step
        raise StepError("mnist", f"{exc}") from None
    return to_float(mnist.x_test[:count]), mnist.y_test[:count]
