"""Where a quantized TFLite file loses precision: its intermediate tensors against the float ones.

Exported files carry no internal tensor names (they are stripped), so the diagnosis rebuilds the
same graph from the source with the file's recorded settings (mode, calibration count and seed; the
conversion is deterministic) keeping the names, runs it with every intermediate preserved, and
compares each quantized tensor, dequantized, with its float counterpart:

- recurrent full int8 (export/recurrent_int8.py): the probe graph (the 27 loop steps inline, same
  ops and scales) against the float64 reference of the same weights;
- every other TFLite mode: the converter's quantized graph against its float32 graph, tensors
  matched by name.

Per tensor: relative RMS error ``rms(q - f) / rms(f)`` and SNR in dB, pooled over the time steps
(copies of the same layer and role are grouped), and the worst single step; the worst come first.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from mnistkit.export.modes import ExportConfig, Format, Mode
from mnistkit.runtime.errors import ExportError


def _preserved(data: bytes, x: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Run ``data`` on float images ``x`` keeping every tensor; return name -> float value, name -> dtype."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=data, experimental_preserve_all_tensors=True, num_threads=1,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], list(x.shape))
    it.allocate_tensors()
    if inp["dtype"] == np.float32:
        xi = x.astype(np.float32)
    else:
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        xi = np.clip(np.rint(x / scale + zero), info.min, info.max).astype(inp["dtype"])
    it.set_tensor(inp["index"], xi)
    it.invoke()
    out, types = {}, {}
    for d in it.get_tensor_details():
        try:
            v = it.get_tensor(d["index"])
        except ValueError:
            continue
        types[d["name"]] = np.dtype(v.dtype).name
        if v.dtype == np.float32:
            out[d["name"]] = v
        elif d["quantization"][0]:
            scale, zero = d["quantization"]
            out[d["name"]] = (v.astype(np.float64) - zero) * scale
    return out, types


def _error(q: np.ndarray, f: np.ndarray) -> tuple[float, float]:
    """(relative RMS error, SNR dB) of ``q`` against reference ``f``."""
    noise = float(np.sqrt(np.mean((np.asarray(q, np.float64) - f) ** 2)))
    signal = float(np.sqrt(np.mean(np.asarray(f, np.float64) ** 2)))
    rel = noise / max(signal, 1e-12)
    return rel, (200.0 if noise == 0 else 20 * np.log10(max(signal, 1e-12) / noise))


def _rows(pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]], dtypes: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for group, items in pairs.items():
        pooled = _error(np.concatenate([q.ravel() for q, _ in items]), np.concatenate([f.ravel() for _, f in items]))
        worst_step = max(_error(q, f)[0] for q, f in items)
        rows.append({"tensor": group, "dtype": dtypes.get(group, "?"), "count": len(items),
                     "relative_rms": round(pooled[0], 5), "snr_db": round(pooled[1], 1),
                     "worst_step_relative_rms": round(worst_step, 5)})
    return sorted(rows, key=lambda r: -r["relative_rms"])


def recurrent_int8_errors(model, calibration_images: np.ndarray, images: np.ndarray) -> list[dict[str, Any]]:
    """Per-tensor errors of the recurrent full-int8 graph of ``model`` on ``images`` (see module doc)."""
    from mnistkit.export import recurrent_int8 as R

    rm = R.from_keras(model)
    R.calibrate(rm, calibration_images)
    return probe_errors(rm, images)


def probe_errors(rm, images: np.ndarray) -> list[dict[str, Any]]:
    """Per-tensor errors of the int8 graph of a calibrated ``recurrent_int8.RecurrentModel``."""
    from mnistkit.export import recurrent_int8 as R

    got, _ = _preserved(R.build(rm, probe=True), images)
    ref = R.float_trace(rm, images)
    refs: dict[str, np.ndarray] = {}
    for k, d in enumerate(rm.directions):
        order = list(range(R.STEPS - 1, -1, -1)) if d.backward else list(range(R.STEPS))
        u = rm.units
        for t in range(1, R.STEPS):
            z = ref[f"d{k}/z"][t - 1]
            refs[f"d{k}/rec@{t}"], refs[f"d{k}/z@{t}"] = ref[f"d{k}/rec"][t - 1], z
            refs[f"d{k}/proj_t@{t}"] = ref[f"d{k}/proj"][order[t]]
            refs[f"d{k}/h@{t}"] = ref[f"d{k}/h"][t]
            if rm.lstm:
                refs[f"d{k}/c@{t}"] = ref[f"d{k}/c"][t]
                for j, gate in enumerate("ifgo"):
                    zg = z[:, j * u:(j + 1) * u]
                    refs[f"d{k}/{'tanh' if gate == 'g' else 'sigmoid'}_{gate}@{t}"] = (
                        np.tanh(zg) if gate == "g" else 1 / (1 + np.exp(-zg)))
                refs[f"d{k}/tanh_c@{t}"] = np.tanh(ref[f"d{k}/c"][t])
    refs["logits"], refs["probabilities"] = ref["logits"], ref["probabilities"]
    pairs: dict[str, list] = {}
    dtypes: dict[str, str] = {}
    for name, f in refs.items():
        if name in got:
            group = name.split("@")[0]
            pairs.setdefault(group, []).append((got[name], f))
            dtypes[group] = "int16" if any(s in group for s in ("/z", "/c", "/rec", "proj", "sigmoid", "tanh")) \
                or (group.endswith("/h") and not rm.lstm) else "int8"
    return _rows(pairs, dtypes)


_STEP_NUMBER = re.compile(r"(?<=_cell)_\d+")  # the unrolled clone's copy of a cell per time step


def converter_errors(model, config: ExportConfig, calibration_images: np.ndarray | None,
                     images: np.ndarray) -> list[dict[str, Any]]:
    """Per-tensor errors of the converter's TFLite graph in ``config.mode`` against its float32 graph.

    Tensors are matched by name; names that differ only by a cell's copy number (one per unrolled
    time step) are grouped.
    """
    from mnistkit.export import base
    from mnistkit.export.tflite import _converter

    graph = base.conversion_graph(model, Format.TFLITE, config.mode)
    quant = _converter(graph, config, calibration_images).convert()
    float_ = _converter(graph, ExportConfig(format=Format.TFLITE, mode=Mode.NONE), None).convert()
    (got, qtypes), (ref, _) = _preserved(quant, images), _preserved(float_, images)
    pairs: dict[str, list] = {}
    dtypes: dict[str, str] = {}
    for name, q in got.items():
        f = ref.get(name)
        if f is None or f.shape != q.shape or name.startswith("serving_default"):
            continue
        group = _STEP_NUMBER.sub("_N", name.split(";")[0])
        pairs.setdefault(group, []).append((q, f))
        dtypes[group] = qtypes[name]
    return _rows(pairs, dtypes)


def layer_errors(source_path: str, fmt: str, mode: str, *, calibration_samples: int = 200, seed: int = 0,
                 data_dir: str | None = None, count: int = 200) -> list[dict[str, Any]]:
    """Per-layer table of a quantized TFLite file, rebuilt from its source with its settings.

    Args:
        source_path: the Keras source.
        fmt, mode: the file's format and quantization mode (from its manifest or name).
        calibration_samples, seed: the file's calibration draw.
        data_dir: MNIST folder.
        count: test images to compare on.

    Returns:
        Rows (tensor, dtype, count, relative_rms, snr_db, mean_relative_rms), worst first.

    Raises:
        ExportError: not a quantized TFLite file.
    """
    from mnistkit.export import base
    from mnistkit.models.data import to_float

    if fmt != Format.TFLITE.value or mode in (Mode.NONE.value, Mode.FLOAT16.value):
        raise ExportError(f"the per-layer table is for quantized TFLite files (got {fmt} {mode}); "
                          "pass a dynamic, int8 or int16x8 .tflite file")
    config = ExportConfig(format=Format.TFLITE, mode=Mode(mode), calibration_samples=calibration_samples,
                          seed=seed, data_dir=data_dir)
    from mnistkit.models.source import load_keras

    model = load_keras(str(source_path))
    calib = base.calibration_set(config)[0] if config.mode.calibrated else None
    images = to_float(base.mnist(data_dir).x_test[:count])
    if base.graph_kind(model.name, Format.TFLITE, config.mode) == "loop":
        return recurrent_int8_errors(model, calib, images)
    return converter_errors(model, config, calib, images)


def manifest_errors(model, config: ExportConfig, count: int = 64, top: int = 8) -> list[dict[str, Any]] | None:
    """The worst per-tensor errors recorded in the manifest of a written file, where they are cheap
    to get: recurrent full int8 (the probe graph, no second conversion). None otherwise."""
    from mnistkit.export import base
    from mnistkit.models.data import to_float

    if config.format is not Format.TFLITE or base.graph_kind(model.name, config.format, config.mode) != "loop":
        return None
    images = to_float(base.mnist(config.data_dir).x_test[:count])
    return recurrent_int8_errors(model, base.calibration_set(config)[0], images)[:top]


def table(rows: list[dict[str, Any]], top: int = 10) -> str:
    """The worst ``top`` rows as aligned text."""
    width = max([len(r["tensor"]) for r in rows[:top]] + [6])
    lines = [f"{'tensor':<{width}}  dtype  steps  rel.RMS   SNR dB  worst step rel.RMS"]
    for r in rows[:top]:
        lines.append(f"{r['tensor']:<{width}}  {r['dtype']:<5}  {r['count']:>5}  {r['relative_rms']:>7.4f}  "
                     f"{r['snr_db']:>7.1f}  {r['worst_step_relative_rms']:>8.4f}")
    return "\n".join(lines)


def worst_summary(rows: list[dict[str, Any]], n: int = 3) -> str:
    """One clause naming the ``n`` worst tensors, for a check line."""
    return "worst tensors: " + ", ".join(f"{r['tensor']} (rel. RMS {r['relative_rms']:.3g})" for r in rows[:n])
