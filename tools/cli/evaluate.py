"""`mnistkit evaluate`: accuracy, per-class metrics and confusion matrix on the MNIST test set."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

EXPORTED_SUFFIXES = (".tflite", ".onnx")


def predict_test_set(path: Path, x: np.ndarray, backend: str | None = None) -> np.ndarray:
    """Class probabilities for float images ``x`` from a Keras file, run directory or exported model."""
    if path.suffix in EXPORTED_SUFFIXES:
        from mnistkit.runtime import Classifier

        return Classifier.load(path, backend=backend).predict_proba(x)
    from mnistkit.models.source import load_keras

    return load_keras(path).predict(x, batch_size=1000, verbose=0)


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate on the first N test images only.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder with the four MNIST IDX files.")
@click.option("--backend", help="Runtime backend for exported models (e.g. ai-edge-litert, onnxruntime).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate(path, limit, data_dir, backend, as_json):
    """Evaluate PATH (a .keras file, a run directory, or an exported .tflite/.onnx) on MNIST's test set.

    Prints accuracy, per-class precision/recall/F1 with macro and weighted averages, and the 10x10
    confusion matrix.
    """
    from mnistkit.models.data import load_mnist, to_float
    from mnistkit.tools.report.metrics import classification_metrics, classification_report
    from mnistkit.models.source import resolve_model_path

    model_path = resolve_model_path(path)
    if model_path.suffix not in EXPORTED_SUFFIXES + (".keras",):
        raise click.UsageError(f"{model_path} is not a model (.keras, .tflite or .onnx); pass a model file or a run directory")
    mnist = load_mnist(data_dir)
    x, y = mnist.x_test[:limit], mnist.y_test[:limit]
    probs = predict_test_set(model_path, to_float(x), backend)
    metrics = classification_metrics(y, probs.argmax(axis=1))
    metrics["model_path"] = str(model_path)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
    else:
        click.echo(f"{model_path}: accuracy {metrics['accuracy']:.2%} on {metrics['count']} test images\n")
        click.echo(classification_report(metrics))
