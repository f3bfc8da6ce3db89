"""Classify a Ray Dataset of images on a Ray cluster (or a local Ray instance): ``mnistkit[ray]``.

    import ray
    from mnistkit.runtime.ray_data import classify_dataset, read_images
    ds = read_images("s3://bucket/scans")                  # or any Dataset with image bytes/arrays
    out = classify_dataset(ds, "exports/cnn_int8.tflite")  # adds label, confidence, top_k, error
    out.write_json("s3://bucket/results")

Each actor loads the model once (the file's bytes travel with the job, so workers need no copy of
it) and does the decoding and MNIST-style preprocessing itself, then runs its batch through the
model. A row whose image cannot be read gets ``label = -1`` and its reason in ``error``; the job goes
on. Actors reserve a fraction of a CPU by default (``cpus_per_actor=0.5``): on a 2-core machine, a
whole CPU per actor leaves none for Ray's read tasks and the job never starts.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from mnistkit.runtime.errors import BackendUnavailableError, UsageError
from mnistkit.runtime.sources import IMAGE_SUFFIXES

OUTPUT_COLUMNS = ("label", "confidence", "top_k_labels", "top_k_probs", "error")


def require_ray():
    """Import ray (and ray.data), or say which extra installs it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise BackendUnavailableError(
            'the Ray engine needs Ray Data; install it with: pip install "mnistkit[ray]"') from None
    return ray


def read_images(location: str | list[str]):
    """A Dataset of the image files under ``location`` (a folder, file, glob-free URI or a list):
    columns ``bytes`` and ``path``; any filesystem Ray Data reads (local, s3://, gs://, ...)."""
    ray = require_ray()
    exts = sorted(s.lstrip(".") for s in IMAGE_SUFFIXES)
    return ray.data.read_binary_files(location, include_paths=True,
                                      file_extensions=exts + [e.upper() for e in exts])


class _Predictor:
    """A Ray Data actor: one Classifier, preprocessing and inference of whole batches."""

    def __init__(self, model_bytes: bytes, model_name: str, top_k: int, column: str,
                 backend: str | None = None, threads: int | None = 1):
        from mnistkit.runtime.classifier import Classifier

        self._dir = tempfile.TemporaryDirectory(prefix="mnistkit-ray-")
        path = Path(self._dir.name) / model_name
        path.write_bytes(model_bytes)
        self.clf = Classifier.load(path, backend=backend, threads=threads)
        self.top_k = top_k
        self.column = column

    def __call__(self, batch: dict) -> dict:
        from mnistkit.runtime.bulk_work import prepare_bytes
        from mnistkit.runtime.errors import MnistkitError
        from mnistkit.runtime.prediction import predictions
        from mnistkit.runtime.preprocess import prepare

        values = batch[self.column]
        names = batch.get("path")
        n = len(values)
        images: list[np.ndarray | None] = [None] * n
        errors: list[str | None] = [None] * n
        for i, value in enumerate(values):
            name = str(names[i]) if names is not None else f"row {i}"
            if isinstance(value, (bytes, bytearray, memoryview)):
                item = prepare_bytes(name, bytes(value))
                images[i], errors[i] = item.image, item.error
            else:
                try:
                    images[i] = np.asarray(prepare(np.asarray(value)), np.float32)
                except MnistkitError as exc:
                    errors[i] = f"{name}: {exc}"
                except Exception as exc:  # noqa: BLE001 - one bad row must never fail the job
                    errors[i] = f"{name}: unexpected {type(exc).__name__}: {exc}".splitlines()[0]
        good = [i for i in range(n) if images[i] is not None]
        label = np.full(n, -1, np.int64)
        confidence = np.zeros(n, np.float64)
        top_labels = [[] for _ in range(n)]
        top_probs = [[] for _ in range(n)]
        if good:
            proba = self.clf.predict_proba(np.stack([images[i] for i in good]))
            for i, pred in zip(good, predictions(proba, self.top_k, good)):
                label[i], confidence[i] = pred.label, pred.confidence
                top_labels[i] = [lab for lab, _ in pred.top_k]
                top_probs[i] = [p for _, p in pred.top_k]
        out = {k: v for k, v in batch.items() if k != self.column}
        out.update(label=label, confidence=confidence, top_k_labels=_objects(top_labels),
                   top_k_probs=_objects(top_probs), error=np.array(["" if e is None else e for e in errors],
                                                                   dtype=object))
        return out


def _objects(rows: list) -> np.ndarray:
    out = np.empty(len(rows), dtype=object)
    out[:] = rows
    return out


def classify_dataset(ds, model: str | os.PathLike, *, column: str | None = None, top_k: int = 3,
                     batch_size: int = 64, num_actors: int | None = None, cpus_per_actor: float = 0.5,
                     backend: str | None = None):
    """Return ``ds`` with label, confidence, top-k and error columns, computed by Ray actors.

    Args:
        ds: a ``ray.data.Dataset`` with one image per row: encoded bytes (``read_images``,
            ``read_binary_files``) or numpy arrays (``ray.data.read_images``, ``from_numpy``).
        model: the .tflite/.onnx file, read here and shipped to every actor.
        column: the image column; default ``bytes``, else ``image``, else ``data``.
        top_k: (label, probability) pairs kept per row (1-10).
        batch_size: rows per actor call (one model call per batch).
        num_actors: actors (one model each); default: one per CPU Ray reports.
        cpus_per_actor: CPUs each actor reserves (fractions leave room for read tasks).
        backend: the runtime backend in the actors (default: the best installed there).

    Returns:
        A lazy Dataset: the input columns except the image, plus ``label`` (-1 when the row
        failed), ``confidence``, ``top_k_labels``, ``top_k_probs`` and ``error`` ("" when fine).

    Raises:
        UsageError: no image column, or an argument out of range.
        BackendUnavailableError: Ray is not installed.
    """
    ray = require_ray()
    if not isinstance(top_k, int) or not 1 <= top_k <= 10:
        raise UsageError(f"top_k must be an integer from 1 to 10, not {top_k!r}")
    if cpus_per_actor <= 0 or batch_size < 1 or (num_actors is not None and num_actors < 1):
        raise UsageError("cpus_per_actor, batch_size and num_actors must be positive")
    if column is None:  # reading the schema may run part of the pipeline: only when needed
        names = ds.schema().names
        column = next((c for c in ("bytes", "image", "data") if c in names), None)
        if column is None:
            raise UsageError(f"the dataset has no image column (columns: {', '.join(names)}); "
                             "pass column= the one holding image bytes or arrays")
    from mnistkit.runtime.manifest import load_manifest, read_model, verify

    path = Path(model)
    content = read_model(path)
    verify(path, content, load_manifest(path))
    if num_actors is None:
        num_actors = max(1, int(ray.cluster_resources().get("CPU", 1)))
    with warnings.catch_warnings():  # max_restarts travels as a deprecated ray_remote_args in 2.60
        warnings.simplefilter("ignore")
        return ds.map_batches(
            _Predictor, batch_size=batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=num_actors), num_cpus=cpus_per_actor,
            max_restarts=0,  # the model bytes are constructor arguments: a restart could not get them
            fn_constructor_kwargs={"model_bytes": content, "model_name": path.name, "top_k": top_k,
                                   "column": column, "backend": backend})


def to_record(row: dict) -> dict:
    """A result row as the record ``mnistkit classify --output`` writes (source, label, top_k...)."""
    source = str(row.get("path", ""))
    if row.get("error"):
        return {"source": source, "error": str(row["error"])}
    top = [[int(lab), float(p)] for lab, p in zip(row["top_k_labels"], row["top_k_probs"])]
    return {"source": source, "label": int(row["label"]), "confidence": float(row["confidence"]), "top_k": top}
