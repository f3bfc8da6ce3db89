"""Training run folders: write one atomically (model, manifest, history, metrics, plots), publish its model.

Finding and loading the model of a run folder is ``mnistkit.models.source``."""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import numpy as np

from mnistkit.models.artifacts import atomic_dir, atomic_path, sha256_file, tool_versions, write_json_atomic
from mnistkit.models.source import RUN_MODEL
from mnistkit.runtime.manifest import manifest_path

VERSION_PACKAGES = ("mnistkit", "tensorflow-cpu", "tensorflow", "keras", "numpy")


def model_manifest(result, mnist, metrics: dict, model_sha256: str) -> dict:
    """The manifest recorded beside a trained ``.keras`` file."""
    return {
        "artifact": {"file": RUN_MODEL, "sha256": model_sha256},
        "model": result.model.name,
        "format": "keras",
        "parameters": int(result.model.count_params()),
        "recipe": result.recipe.to_dict(),
        "data": {"source": mnist.source, "md5": mnist.checksums, "train_images": result.train_count},
        "training": {
            "seconds": round(result.seconds, 1), "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch, "interrupted": result.interrupted,
        },
        "test_accuracy": metrics["accuracy"],
        "versions": {**tool_versions(*VERSION_PACKAGES), "python": platform.python_version()},
    }


def write_run(result, mnist, out: str | Path, force: bool = False) -> Path:
    """Write a training run directory atomically: model, manifest, history, metrics and plots."""
    from mnistkit.tools.report import plots
    from mnistkit.tools.report.metrics import classification_metrics

    name = result.model.name
    probs = result.test_probabilities
    metrics = classification_metrics(mnist.y_test, probs.argmax(axis=1))
    metrics.update({"model": name, "best_epoch": result.best_epoch, "interrupted": result.interrupted})
    with atomic_dir(out, force=force) as tmp:
        result.model.save(tmp / RUN_MODEL)
        write_json_atomic(manifest_path(tmp / RUN_MODEL), model_manifest(result, mnist, metrics, sha256_file(tmp / RUN_MODEL)))
        write_json_atomic(tmp / "history.json", result.history)
        write_json_atomic(tmp / "metrics.json", metrics)
        plots.training_curves(result.history, tmp / "training_curves.png", f"{name}: training curves")
        plots.confusion_heatmap(np.array(metrics["confusion_matrix"]), tmp / "confusion_matrix.png",
                                f"{name}: confusion matrix, accuracy {metrics['accuracy']:.2%}")
        plots.misclassified_grid(mnist.x_test, mnist.y_test, probs, tmp / "misclassified.png")
    return Path(out)


def publish(run_dir: str | Path, dest: str | Path) -> Path:
    """Copy a run's model and manifest to ``dest/<model>.keras`` (+ ``.json``), atomically."""
    import json

    run_dir, dest = Path(run_dir), Path(dest)
    manifest = json.loads(manifest_path(run_dir / RUN_MODEL).read_text())
    name = manifest["model"]
    target = dest / f"{name}.keras"
    with atomic_path(target) as tmp:
        shutil.copyfile(run_dir / RUN_MODEL, tmp)
    manifest["artifact"]["file"] = target.name
    write_json_atomic(manifest_path(target), manifest)
    return target
