"""`mnistkit evaluate`: accuracy, per-class metrics and confusion matrix on the MNIST test set."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

EXPORTED_SUFFIXES = (".tflite", ".onnx")


def predict_test_set(path: Path, x: np.ndarray, backend: str | None = None) -> np.ndarray:
    """Class probabilities for float images ``x`` from a Keras file, run directory or exported model."""
    from mnistkit.tools.robustness.benchmark import load_predictor

    return load_predictor(path, backend)(x)


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate on the first N test images only.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder with the four MNIST IDX files.")
@click.option("--backend", help="Runtime backend for exported models (e.g. ai-edge-litert, onnxruntime).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--robustness", is_flag=True, help="Instead: accuracy under controlled, seeded shifts (low resolution, "
              "stroke width, rotation, slant, scale, border, blur, noise, broken strokes, inverted) and on photo-like "
              "images, every image through the runtime preprocessing.")
@click.option("--photos", type=click.IntRange(min=0), default=300, show_default=True, help="With --robustness: photo-like images to render (0: none).")
@click.option("--seed", type=int, default=0, show_default=True, help="With --robustness: seed of the shifts.")
def evaluate(path, limit, data_dir, backend, as_json, robustness, photos, seed):
    """Evaluate PATH (a .keras file, a run directory, or an exported .tflite/.onnx) on MNIST's test set.

    Prints accuracy, per-class precision/recall/F1 with macro and weighted averages, and the 10x10
    confusion matrix. With --robustness, prints the robustness table instead (a few minutes on the
    10,000 images; try --limit 1000 first).
    """
    from mnistkit.models.data import load_mnist, to_float
    from mnistkit.tools.report.metrics import classification_metrics, classification_report
    from mnistkit.models.source import resolve_model_path

    model_path = resolve_model_path(path)
    if model_path.suffix not in EXPORTED_SUFFIXES + (".keras",):
        raise click.UsageError(f"{model_path} is not a model (.keras, .tflite or .onnx); pass a model file or a run directory")
    if robustness:
        from mnistkit.tools.robustness.shifts import require_scipy

        require_scipy()  # before the slow parts
    mnist = load_mnist(data_dir)
    x, y = mnist.x_test[:limit], mnist.y_test[:limit]
    if robustness:
        from mnistkit.tools.robustness.benchmark import load_predictor

        _robustness(model_path, load_predictor(model_path, backend), x, y, seed=seed, photos=photos, as_json=as_json)
        return
    probs = predict_test_set(model_path, to_float(x), backend)
    metrics = classification_metrics(y, probs.argmax(axis=1))
    metrics["model_path"] = str(model_path)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
    else:
        click.echo(f"{model_path}: accuracy {metrics['accuracy']:.2%} on {metrics['count']} test images\n")
        click.echo(classification_report(metrics))


def _robustness(model_path: Path, predict, x: np.ndarray, y: np.ndarray, *, seed: int, photos: int,
                as_json: bool) -> dict:
    """Build the benchmark with progress on stderr, evaluate ``predict`` and print the table (or JSON)."""
    import json
    import sys
    import time

    from mnistkit.tools.robustness.benchmark import CLEAN, PHOTOS, SHIFTS, build, evaluate, format_table

    names = [CLEAN.name, *(s.name for s in SHIFTS)] + ([PHOTOS] if photos else [])
    start = time.perf_counter()
    tty = sys.stderr.isatty()

    def progress(name: str) -> None:
        if tty:
            click.echo(f"\rpreparing {name:<10} ({names.index(name) + 1}/{len(names)}, "
                       f"{time.perf_counter() - start:.0f} s)", err=True, nl=False)

    bench = build(x, y, seed=seed, photos=photos, progress=progress)
    done = f"prepared {len(names)} sets in {time.perf_counter() - start:.0f} s"
    click.echo(f"\r{done:<40}" if tty else done, err=True)
    result = evaluate(predict, bench)
    if as_json:
        click.echo(json.dumps({"model_path": str(model_path), "seed": seed, "count": len(y), "photos": photos,
                               "accuracy": result, "refused": {k: int(v.sum()) for k, v in bench.refused.items()}},
                              indent=2))
    else:
        click.echo(f"{model_path}: robustness on {len(y)} test images (seed {seed}); every image through the "
                   "runtime preprocessing\n")
        click.echo(format_table({model_path.name: result}, bench))
    return result
