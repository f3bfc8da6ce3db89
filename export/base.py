"""Shared base of the exporters: the format registry, the graph to convert, calibration data, the
operator census.

Each format module (``export/tflite.py``, ``export/onnx.py``) exposes
``convert(model, config) -> (bytes, calibration record)`` and ``inspect_file(path) -> dict`` (I/O tensors and op census);
``EXPORTERS`` maps a Format to its module, imported only when used (by the worker process, see
``export/worker.py``). MNIST is cached per process so a worker exporting many modes of one model
loads it once (the Keras source is cached by ``mnistkit.models.source.load_keras``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from mnistkit.export.modes import ExportConfig, Format, Mode, parse_format
from mnistkit.models.zoo import RECURRENT
from mnistkit.runtime.errors import ExportError

EXPORTERS: dict[Format, str] = {
    Format.TFLITE: "mnistkit.export.tflite",
    Format.ONNX: "mnistkit.export.onnx",
    Format.TFLM: "mnistkit.export.tflm",
}


def exporter(fmt: Format | str) -> ModuleType:
    """Import and return the exporter module registered for ``fmt``."""
    return importlib.import_module(EXPORTERS[parse_format(fmt)])


def conversion_graph(model, fmt: Format, mode: Mode | None = None):
    """The graph a converter takes (see :func:`graph_kind`): the model or an unrolled clone. The
    'loop' kind is not converted but written directly (export/recurrent_int8.py)."""
    if graph_kind(model.name, fmt, mode) == "unrolled":
        return _unrolled(model)
    return model


@functools.lru_cache(maxsize=2)
def _unrolled(model):
    from mnistkit.models.zoo import unrolled_clone

    return unrolled_clone(model)


def graph_kind(name: str, fmt: Format, mode: Mode | None = None) -> str:
    """How a model is converted: 'as-is', 'unrolled' (a clone with plain ops) or 'loop'.

    TFLite recurrent models: full int8 is a WHILE loop written from the trained weights (one copy
    of the step, int16 gates and cell state: export/recurrent_int8.py); the other modes convert the
    unrolled clone (free batch dimension, plain ops that XNNPACK runs whole). Keras 3's own LSTM
    graph does not convert with a free batch. ONNX: LSTM and BiLSTM stay whole (one ONNX ``LSTM``
    op); SimpleRNN is unrolled because tf2onnx turns it into a ``Loop`` that float16 breaks and
    quantization cannot shrink.
    """
    if name in RECURRENT and fmt in (Format.TFLITE, Format.TFLM):
        return "loop" if mode is Mode.INT8 else "unrolled"
    if name == "rnn":
        return "unrolled"
    return "as-is"


@functools.lru_cache(maxsize=2)
def _mnist(data_dir: str | None):
    from mnistkit.models.data import load_mnist

    return load_mnist(data_dir)


def mnist(data_dir: str | None = None):
    """MNIST, loaded once per process."""
    return _mnist(data_dir)


def calibration_indices(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Draw ``count`` training indices stratified by class (seeded, without replacement).

    Each digit gets ``count // 10`` images, the first ``count % 10`` digits (in a seeded order)
    one more, so every class is represented even for small counts.
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per = np.full(len(classes), count // len(classes))
    per[rng.permutation(len(classes))[: count % len(classes)]] += 1
    picks = [rng.choice(np.flatnonzero(labels == c), size=n, replace=False) for c, n in zip(classes, per)]
    out = np.concatenate(picks)
    rng.shuffle(out)
    return out


def calibration_set(config: ExportConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """Calibration images (float32 (N, 28, 28) in [0, 1]) and the record of how they were drawn."""
    from mnistkit.models.data import to_float

    data = mnist(config.data_dir)
    idx = calibration_indices(data.y_train, config.calibration_samples, config.seed)
    record = {
        "count": int(len(idx)),
        "split": "train",
        "method": "stratified random: equal share per digit, seeded numpy default_rng",
        "seed": config.seed,
        "indices_sha256": hashlib.sha256(np.sort(idx).astype("<i8").tobytes()).hexdigest(),
    }
    return to_float(data.x_train[idx]), record


def no_calibration() -> dict[str, Any]:
    """Calibration record of a mode that uses none."""
    return {"count": 0, "split": None, "method": "none (mode needs no calibration)"}


def check_out_dir(out_dir: str | os.PathLike, option: str = "--out") -> Path:
    """Create ``out_dir`` if needed and prove it is writable (``option`` names the flag to change).

    Raises:
        ExportError: the folder cannot be created or written.
    """
    out = Path(out_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".mnistkit-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ExportError(f"output folder {out} is not writable ({exc.strerror}); choose another {option}") from None
    return out


# Precision labels of weighted ops, shared by the format modules' operator census.
FLOAT_PRECISIONS = frozenset({"float32"})


def op_census(weighted: list[tuple[str, str]], all_ops: list[str], weight_elems: dict[str, int]) -> dict[str, Any]:
    """Summarize an exported graph's operators for the manifest.

    Args:
        weighted: (op type, precision) for each op that holds weights (conv, dense, recurrent),
            precision one of float32, float16, int8, int16x8, int8-weights (hybrid/dynamic).
        all_ops: op type of every node.
        weight_elems: number of constant weight elements per stored dtype.

    Returns:
        Counts by type, the weighted ops by precision, the share of weighted ops and of weight
        elements that are not float32, and the weighted op types left in float32.
    """
    by_type: dict[str, int] = {}
    for op in all_ops:
        by_type[op] = by_type.get(op, 0) + 1
    by_precision: dict[str, dict[str, int]] = {}
    for op, prec in weighted:
        by_precision.setdefault(prec, {})
        by_precision[prec][op] = by_precision[prec].get(op, 0) + 1
    n_q = sum(1 for _, p in weighted if p not in FLOAT_PRECISIONS)
    total_w = sum(weight_elems.values()) or 1
    reduced_w = sum(n for dt, n in weight_elems.items() if dt != "float32")
    left_float = sorted({op for op, p in weighted if p in FLOAT_PRECISIONS})
    return {
        "total": len(all_ops),
        "by_type": dict(sorted(by_type.items())),
        "weighted_ops": len(weighted),
        "weighted_by_precision": by_precision,
        "quantized_share": round(n_q / len(weighted), 4) if weighted else 0.0,
        "weights_by_dtype": weight_elems,
        "weights_quantized_share": round(reduced_w / total_w, 4),
        "left_in_float32": left_float,
    }


def census_note(fmt: Format, mode_value: str, census: dict[str, Any]) -> str | None:
    """A plain sentence when a reduced-precision mode left weighted ops in float32, with the reason
    and the alternative where one is known."""
    from mnistkit.export.mode_rules import FLOAT_OP_HINTS

    if mode_value == "none" or not census["left_in_float32"]:
        return None
    share = census["weights_quantized_share"] * 100
    hints = [FLOAT_OP_HINTS[k] for k in [(fmt, op, mode_value) for op in census["left_in_float32"]]
             + [(fmt, "*", mode_value)] if k in FLOAT_OP_HINTS]
    return (
        f"{mode_value} left {', '.join(census['left_in_float32'])} in float32 "
        f"({share:.0f}% of the weight values are reduced-precision)" + (f": {'; '.join(hints)}" if hints else "")
    )
