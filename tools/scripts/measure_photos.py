"""Measure a model's accuracy on a folder of labelled photo-like digit images.

    python -m mnistkit.tools.scripts.measure_photos MODEL FOLDER [--json]

MODEL is an exported ``.tflite`` / ``.onnx`` file (run with ``mnistkit.runtime.Classifier``) or a
``.keras`` file (run with Keras; needs the ``train`` extra). FOLDER holds images named
``<label>_<source>[_<anything>].<ext>`` as written by ``python -m mnistkit.tools.scripts.make_samples``.

Prints accuracy per source (font family or MNIST), per file format and overall, for two pipelines:
``prepare`` (mnistkit.runtime.preprocess: invert, denoise, crop, fit 20x20, centre by mass) and
``resize`` (the naive baseline: grayscale, resize to 28x28, invert when the mean is light). An image
the preprocessing refuses (ImageError) counts as wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np

from mnistkit.runtime.errors import ImageError, UsageError
from mnistkit.runtime.guard import script_guarded
from mnistkit.runtime.preprocess import prepare

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def load_predictor(model: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Return a function mapping float32 (N, 28, 28) in [0, 1] to probabilities (N, 10)."""
    if model.suffix in (".keras", ".h5"):
        try:
            import keras
        except ImportError:
            raise UsageError('a .keras model needs Keras: pip install "mnistkit[train]"') from None
        net = keras.saving.load_model(model, compile=False)
        return lambda x: np.asarray(net.predict(x, batch_size=256, verbose=0))
    from mnistkit.runtime import Classifier

    return Classifier.load(model).predict_proba


def naive_resize(path: Path) -> np.ndarray:
    """The baseline without preprocessing: grayscale, resize to 28x28, invert a light image."""
    from mnistkit.runtime.imageio import read_gray
    from PIL import Image

    gray = read_gray(path)
    small = np.asarray(Image.fromarray(gray).resize((28, 28), Image.Resampling.BILINEAR))
    return np.clip(1.0 - small if small.mean() > 0.5 else small, 0.0, 1.0).astype(np.float32)


def file_format(path: Path) -> str:
    """``<format>-<mode>`` of an image file, e.g. ``png-I;16`` (header only)."""
    from PIL import Image

    with Image.open(path) as im:
        return f"{(im.format or path.suffix[1:]).lower()}-{im.mode}"


def measure(model: Path, folder: Path) -> dict:
    """Accuracy of ``model`` on ``folder`` with the preprocessing and with the naive baseline."""
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder; pass the folder written by make_samples")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    files = [p for p in files if p.name[:1].isdigit() and p.name[1:2] == "_"]
    if not files:
        raise UsageError(f"no images named <label>_<source>_... in {folder}; run make_samples first")
    predict = load_predictor(model)
    labels = np.array([int(p.name[0]) for p in files])
    prepared = np.zeros((len(files), 28, 28), np.float32)
    ok = np.ones(len(files), bool)
    errors, ms = {}, []
    for i, path in enumerate(files):
        start = time.perf_counter()
        try:
            prepared[i] = prepare(path)
        except ImageError as exc:
            ok[i], errors[path.name] = False, str(exc)
        ms.append((time.perf_counter() - start) * 1e3)
    naive = np.stack([naive_resize(p) for p in files])
    hit = {
        "prepare": (np.argmax(predict(prepared), axis=1) == labels) & ok,
        "resize": np.argmax(predict(naive), axis=1) == labels,
    }
    groups: dict[str, list[int]] = defaultdict(list)
    for i, path in enumerate(files):
        groups[f"source {path.stem.split('_')[1]}"].append(i)
        groups[f"format {file_format(path)}"].append(i)
    rows = {name: _row(hit, idx) for name, idx in sorted(groups.items())}
    rows["overall"] = _row(hit, list(range(len(files))))
    return {
        "model": str(model), "folder": str(folder), "images": len(files),
        "prepare_ms": {"mean": round(float(np.mean(ms)), 2), "median": round(float(np.median(ms)), 2)},
        "refused": errors, "accuracy": rows,
        "wrong": [files[i].name for i in np.nonzero(~hit["prepare"])[0]],
    }


def _row(hit: dict, idx: list[int]) -> dict:
    return {"n": len(idx), **{k: round(float(v[idx].mean()), 4) for k, v in hit.items()}}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m mnistkit.tools.scripts.measure_photos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("model", type=Path, help="exported .tflite/.onnx model, or a .keras model")
    parser.add_argument("folder", type=Path, help="folder of labelled images (from make_samples)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    return script_guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    result = measure(args.model, args.folder)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['model']} on {result['images']} images in {result['folder']}")
    print(f"{'group':28s} {'n':>4s} {'prepare':>8s} {'resize':>8s}")
    for name, row in result["accuracy"].items():
        print(f"{name:28s} {row['n']:4d} {row['prepare']:8.1%} {row['resize']:8.1%}")
    ms = result["prepare_ms"]
    print(f"preprocessing (decode included): median {ms['median']:.2f} ms, mean {ms['mean']:.2f} ms "
          f"per image; refused: {len(result['refused'])}")
    for name, message in result["refused"].items():
        print(f"  refused {name}: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
