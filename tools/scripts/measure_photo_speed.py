"""Time the photo path against a bare Pillow decode + grayscale + resize of the same files.

    python -m mnistkit.tools.scripts.measure_photo_speed FOLDER [--limit 400] [--rounds 5] [--model M] [--json]

For every image file in FOLDER (e.g. written by ``python -m mnistkit.tools.scripts.make_samples``), each
round times, one file right after the other (so a slow spell of a shared machine hits both alike):

- bare:  ``PIL.Image.open`` -> ``convert("L")`` -> ``resize((28, 28))`` -> numpy array;
- photo: ``mnistkit.runtime.preprocess.prepare(path)`` (decode + MNIST-style normalisation) then
  ``Classifier.predict_proba`` on the result (the bundled model unless ``--model``).

Each file keeps its fastest round per pipeline; the figures are sums of those over the files, and
their ratio (goal: photo <= 1.5x bare). The photo path is also split into decode (``decode_gray``)
and normalisation (``prepare_gray``) the same way. The normalisation runs on the compiled kernels when
numba is installed (``mnistkit[fast]``); ``MNISTKIT_PREPROCESS=numpy`` measures the numpy ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def bare_pillow(path: Path) -> np.ndarray:
    """The baseline: decode, grayscale, resize to 28x28 with Pillow, as a numpy array."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L").resize((28, 28), Image.Resampling.BILINEAR))


def measure(files: list[Path], rounds: int, model: str | None) -> dict:
    """Fastest-of-``rounds`` per file and pipeline; returns summed milliseconds and ratios."""
    from mnistkit.runtime import Classifier
    from mnistkit.runtime.cli import DEFAULT_MODEL
    from mnistkit.runtime.errors import ImageError
    from mnistkit.runtime.imageio import decode_gray
    from mnistkit.runtime.preprocess import kernels, prepare, prepare_gray

    clf = Classifier.load(model or DEFAULT_MODEL)
    clf.warm_up()

    def photo(path: Path) -> None:
        try:
            clf.predict_proba(prepare(path)[None])
        except ImageError:
            pass

    def split(path: Path) -> tuple[float, float]:
        t0 = time.perf_counter()
        gray = decode_gray(path)
        t1 = time.perf_counter()
        try:
            prepare_gray(gray)
        except ImageError:
            pass
        return t1 - t0, time.perf_counter() - t1

    inf = float("inf")
    best = {k: np.full(len(files), inf) for k in ("bare", "photo", "decode", "normalise")}
    for _ in range(rounds):
        for i, path in enumerate(files):
            t0 = time.perf_counter()
            bare_pillow(path)
            t1 = time.perf_counter()
            photo(path)
            t2 = time.perf_counter()
            dec, norm = split(path)
            best["bare"][i] = min(best["bare"][i], t1 - t0)
            best["photo"][i] = min(best["photo"][i], t2 - t1)
            best["decode"][i] = min(best["decode"][i], dec)
            best["normalise"][i] = min(best["normalise"][i], norm)
    ms = {k: float(v.sum() * 1e3) for k, v in best.items()}
    per_file = best["photo"] / best["bare"]
    return {"files": len(files), "rounds": rounds, "kernels": kernels().name, "total_ms": {k: round(v, 1) for k, v in ms.items()},
            "per_image_ms": {k: round(v / len(files), 3) for k, v in ms.items()},
            "ratio_photo_to_bare": round(ms["photo"] / ms["bare"], 2),
            "median_file_ratio": round(float(np.median(per_file)), 2), "goal": 1.5}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--limit", type=int, default=400, help="files measured (sorted by name, every k-th)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--model", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    files = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        print(f"error: {args.folder} holds no images; make some with python -m mnistkit.tools.scripts.make_samples",
              file=sys.stderr)
        return 2
    step = max(1, len(files) // args.limit)
    out = measure(files[::step][: args.limit], args.rounds, args.model)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        per = out["per_image_ms"]
        print(f"{out['files']} files, fastest of {out['rounds']} interleaved rounds each, {out['kernels']} kernels")
        print(f"bare Pillow decode+gray+resize  {per['bare']:.3f} ms/image")
        print(f"photo path (prepare + model)    {per['photo']:.3f} ms/image   "
              f"= {out['ratio_photo_to_bare']:.2f}x bare (goal <= 1.5x; median file {out['median_file_ratio']:.2f}x)")
        print(f"  of which decode (decode_gray) {per['decode']:.3f} ms, normalise {per['normalise']:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
