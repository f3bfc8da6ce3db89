"""The robustness benchmark: accuracy of a model on MNIST's test set under controlled shifts.

Every shifted image (tools/robustness/shifts.py) goes through the runtime's preprocessing
(``mnistkit.runtime.preprocess.prepare``) before the model, as a user's image would: a digit the
preprocessing refuses counts as wrong. The photo-like set of ``tools/scripts/make_samples.py`` (fonts and
MNIST ink on paper, written to a temporary folder) is measured the same way. The summary is the mean
over the shifts (``clean`` and ``photos`` excluded) and the worst shift.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from mnistkit.runtime.errors import ImageError
from mnistkit.runtime.preprocess import prepare
from mnistkit.tools.robustness.shifts import CLEAN, SHIFTS, Shift, require_scipy

Predictor = Callable[[np.ndarray], np.ndarray]
"""float32 (N, 28, 28) in [0, 1] -> probabilities (N, 10)."""

PHOTOS = "photos"
DEFAULT_PHOTOS = 300


EXPORTED_SUFFIXES = (".tflite", ".onnx")


def load_predictor(path: Path, backend: str | None = None) -> Predictor:
    """A :data:`Predictor` for a Keras model (file or run folder) or an exported file (through the runtime).

    Args:
        path: a ``.keras`` file, a training run folder, or a ``.tflite`` / ``.onnx`` file.
        backend: runtime backend for exported files (None: the best installed).
    """
    if Path(path).suffix in EXPORTED_SUFFIXES:
        from mnistkit.runtime import Classifier

        return Classifier.load(path, backend=backend).predict_proba
    from mnistkit.models.source import load_keras

    model = load_keras(path)
    return lambda x: model.predict(x, batch_size=1000, verbose=0)


@dataclass
class Bench:
    """Prepared inputs of the benchmark: per set name, images (N, 28, 28), labels, refused mask."""

    images: dict[str, np.ndarray] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    refused: dict[str, np.ndarray] = field(default_factory=dict)
    seed: int = 0

    @property
    def names(self) -> list[str]:
        """Set names in table order."""
        return list(self.images)


def prepare_all(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run the runtime preprocessing on each image; returns (prepared, refused mask)."""
    out = np.zeros((len(images), 28, 28), np.float32)
    refused = np.zeros(len(images), bool)
    for i, img in enumerate(images):
        try:
            out[i] = prepare(img)
        except ImageError:
            refused[i] = True
    return out, refused


def build(x: np.ndarray, y: np.ndarray, seed: int = 0, photos: int = DEFAULT_PHOTOS,
          shifts: tuple[Shift, ...] = SHIFTS, progress: Callable[[str], None] | None = None) -> Bench:
    """Shift and preprocess the test images ``x`` (uint8) with labels ``y``; add ``photos`` photo-like images.

    Args:
        x: uint8 MNIST images (N, 28, 28).
        y: their labels.
        seed: seed of every random shift parameter.
        photos: how many photo-like images to render (0: none).
        shifts: which shifts.
        progress: called with each set's name before it is built.
    """
    require_scipy()
    bench = Bench(seed=seed)
    for index, shift in enumerate((CLEAN, *shifts)):
        if progress:
            progress(shift.name)
        bench.images[shift.name], bench.refused[shift.name] = prepare_all(shift.apply(x, seed, index))
        bench.labels[shift.name] = np.asarray(y)
    if photos:
        if progress:
            progress(PHOTOS)
        bench.images[PHOTOS], bench.labels[PHOTOS], bench.refused[PHOTOS] = photo_set(photos, seed, x, y)
    return bench


def photo_set(count: int, seed: int, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render ``count`` photo-like digits (make_samples; MNIST ink from ``x``, ``y``), read them back, preprocess them.

    Raises:
        MnistkitError: no usable TrueType fonts on this machine.
    """
    from mnistkit.runtime.errors import MnistkitError
    from mnistkit.tools.scripts.make_samples import Renderer, find_fonts, make_set

    fonts = find_fonts()
    if not fonts:
        raise MnistkitError("no usable TrueType fonts for the photo-like set; install fonts-dejavu or pass --photos 0")
    with tempfile.TemporaryDirectory(prefix="mnistkit-photos-") as tmp:
        files = make_set(Path(tmp), count, seed, Renderer(fonts, x, y))
        labels = np.array([int(p.name[0]) for p in files])
        images, refused = prepare_all(files)
    return images, labels, refused


def evaluate(predict: Predictor, bench: Bench) -> dict[str, float]:
    """Accuracy per set (refused images count as wrong), plus ``mean`` and ``worst`` over the shifts."""
    acc = {}
    for name in bench.names:
        hit = (np.argmax(predict(bench.images[name]), axis=1) == bench.labels[name]) & ~bench.refused[name]
        acc[name] = float(hit.mean())
    return acc | summary(acc)


def summary(acc: dict[str, float]) -> dict[str, float]:
    """Mean and minimum over the shifts (not clean, not photos) of a per-set accuracy dict."""
    values = [acc[s.name] for s in SHIFTS if s.name in acc]
    if not values:
        return {}
    worst = min((s.name for s in SHIFTS if s.name in acc), key=lambda n: acc[n])
    return {"mean": float(np.mean(values)), "worst": float(acc[worst]), "worst_shift": worst}


def descriptions() -> dict[str, str]:
    """One line per set name: what it does."""
    from mnistkit.tools.scripts.make_samples import MNIST_SHARE

    rows = {s.name: s.description for s in (CLEAN, *SHIFTS)}
    rows[PHOTOS] = (f"photo-like images from tools/scripts/make_samples.py (fonts, {MNIST_SHARE:.0%} MNIST ink; "
                    "paper, lighting, blur, noise, file formats)")
    return rows


def format_table(results: dict[str, dict], bench: Bench) -> str:
    """Fixed-width table: one row per set, one column per model (``results``: label -> evaluate())."""
    labels = list(results)
    width = max(10, *(len(label) for label in labels))
    head = f"{'set':<10} {'n':>6} " + " ".join(f"{label:>{width}}" for label in labels)
    lines = [head]
    for name in bench.names:
        n = len(bench.labels[name])
        lines.append(f"{name:<10} {n:>6} " + " ".join(f"{results[m][name]:>{width}.2%}" for m in labels))
    lines.append(f"{'mean':<10} {'':>6} " + " ".join(f"{results[m]['mean']:>{width}.2%}" for m in labels))
    lines.append(f"{'worst':<10} {'':>6} " + " ".join(
        f"{results[m]['worst_shift'] + ' ' + format(results[m]['worst'], '.1%'):>{width}}" for m in labels))
    refused = {name: int(r.sum()) for name, r in bench.refused.items() if r.any()}
    if refused:
        lines.append("refused by the preprocessing (counted wrong): " +
                     ", ".join(f"{k} {v}" for k, v in refused.items()))
    return "\n".join(lines)

