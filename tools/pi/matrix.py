"""The runtime compatibility matrix: every artifact of an export folder on every runtime, measured.

Runtimes: ai-edge-litert, tflite-runtime 2.14 (numpy<2) and onnxruntime, each on x86_64 (this
machine) and on aarch64 (emulated Raspberry Pi 4, Debian bookworm, Cortex-A72). Each cell is the
result of actually loading the file with ``mnistkit.runtime.Classifier.load(path, backend=...)`` in
that environment and running ``predict_proba`` on the first N MNIST test images.

Parity in a cell means: predicted labels identical to the REFERENCE run (x86_64 ai-edge-litert for
.tflite, x86_64 onnxruntime for .onnx) on the same images, and probabilities within 1e-5 (float
outputs) or 3 output quantization steps (integer outputs). Separately, when the artifact's manifest
names its Keras source and TensorFlow is installed here, the agreement of the reference run's labels
with Keras is shown (what quantization costs; the runtimes cannot fix that).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnistkit.export.modes import parse_artifact_name
from mnistkit.runtime.manifest import manifest_path
from mnistkit.tools.pi import sysroot, tflrt, wheels
from mnistkit.tools.pi.common import checkout_root, log
from mnistkit.tools.pi.inputs import find_artifacts, mnist_images
from mnistkit.tools.pi.compare import artifact_mode, compare_runs, tolerance
from mnistkit.tools.pi.targets import Target, host, probe_predict



@dataclass(frozen=True)
class Runtime:
    """One column of the matrix."""

    key: str          # e.g. "litert-aarch64"
    title: str        # e.g. "ai-edge-litert aarch64 (emulated)"
    backend: str      # mnistkit.runtime backend name
    fmt: str          # "tflite" or "onnx"
    target: Target


def runtimes(with_emulation: bool = True, with_tflrt: bool = True) -> list[Runtime]:
    """Set up every environment (cached) and return the matrix's columns, references first.

    Raises:
        StepError: a setup step failed (qemu, sysroot, wheels, venv).
    """
    x86 = host()
    cols = [Runtime("litert-x86_64", "ai-edge-litert x86_64", "litert", "tflite", x86),
            Runtime("onnxruntime-x86_64", "onnxruntime x86_64", "onnxruntime", "onnx", x86)]
    sites = wheels.install_all(tflrt=with_tflrt) if (with_emulation or with_tflrt) else {}
    if with_tflrt:
        venv = Target("x86_64 (tflite-runtime venv)", "x86_64", tflrt.ensure_venv(), (sites["mnistkit"],))
        cols.append(Runtime("tflrt-x86_64", "tflite-runtime 2.14 x86_64", "tflite-runtime", "tflite", venv))
    if with_emulation:
        sysroot.build()
        arm = Target("aarch64 (emulated)", "aarch64", None, (sites["mnistkit"], sites["base"]))
        cols.append(Runtime("litert-aarch64", "ai-edge-litert aarch64 (emulated)", "litert", "tflite", arm))
        if with_tflrt:
            arm_tflrt = Target("aarch64 (emulated, tflite-runtime)", "aarch64", None, (sites["mnistkit"], sites["tflrt"]))
            cols.append(Runtime("tflrt-aarch64", "tflite-runtime 2.14 aarch64 (emulated)", "tflite-runtime",
                                "tflite", arm_tflrt))
        cols.append(Runtime("onnxruntime-aarch64", "onnxruntime aarch64 (emulated)", "onnxruntime", "onnx", arm))
    return cols


_KERAS = r"""
import json, sys, numpy as np, keras
model = keras.models.load_model(sys.argv[1], compile=False)
x = np.load(sys.argv[2])
np.save(sys.argv[3], np.asarray(model(x, training=False)).argmax(1))
"""


def keras_labels(source: Path, images: Path, out: Path) -> np.ndarray | None:
    """Labels the Keras source predicts (in a child process, so TF never loads here); None if impossible."""
    proc = subprocess.run([sys.executable, "-c", _KERAS, str(source), str(images), str(out)],
                          capture_output=True, text=True, timeout=900)
    return np.load(out) if proc.returncode == 0 and out.is_file() else None


def _source_of(artifact: Path) -> Path | None:
    try:
        manifest = json.loads(manifest_path(artifact).read_text())
        file = Path(manifest["source"]["file"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for cand in (file, artifact.parent / file, checkout_root() / file):
        if cand.is_file():
            return cand
    return None


def _row(art: Path, cols: list[Runtime], raw: dict[str, dict[str, dict]], y: np.ndarray,
         keras_cache: dict[Path, np.ndarray | None] | None, images: Path, tmp: Path) -> dict:
    """One artifact's line of the matrix: a cell per runtime of its format, compared with the reference."""
    from mnistkit.export.compat import tflite_runtime_compat

    fmt = art.suffix[1:]
    ref_key = "litert-x86_64" if fmt == "tflite" else "onnxruntime-x86_64"
    ref = raw.get(ref_key, {}).get(str(art), {})
    kind, atol = tolerance(ref.get("describe"), artifact_mode(art), fmt)
    ref_p = np.load(ref["proba"]) if ref.get("runs") else None
    name = parse_artifact_name(art.name)
    row: dict = {"file": art.name, "model": name.model, "format": fmt, "mode": name.mode.value,
                 "size_bytes": art.stat().st_size, "reference": ref_key,
                 "tolerance": {"kind": kind, "atol": atol}, "cells": {}}
    if fmt == "tflite":
        rep = tflite_runtime_compat(art)
        row["compat_tflite_runtime_2_14"] = {"loads": rep.loads, "reasons": rep.reasons}
    keras_y = None
    if keras_cache is not None:
        source = _source_of(art)
        if source is not None and source not in keras_cache:
            keras_cache[source] = keras_labels(source, images, tmp / f"keras-{len(keras_cache)}.npy")
        keras_y = keras_cache.get(source) if source is not None else None
        row["keras_source"] = str(source) if source is not None else None
    for col in cols:
        if col.fmt != fmt:
            continue
        rec = raw.get(col.key, {}).get(str(art), {"loads": None, "runs": False, "error": "not run"})
        cell: dict = {"loads": rec.get("loads"), "runs": bool(rec.get("runs")), "error": rec.get("error"),
                      "note": rec.get("note"),
                      "tensorflow_imported": rec.get("tensorflow_imported"),
                      "default_delegates": (rec.get("describe") or {}).get("default_delegates")}
        if rec.get("runs"):
            proba = np.load(rec["proba"])
            cell["accuracy"] = float((proba.argmax(1) == y).mean())
            if keras_y is not None:
                cell["agreement_with_keras"] = float((proba.argmax(1) == keras_y).mean())
            if ref_p is not None:
                cell["parity"] = compare_runs(ref_p, proba, kind, atol).to_dict()
        # the matrix's parity is about labels; probabilities beyond the tolerance are shown, not failed
        cell["parity_ok"] = bool(cell.get("parity", {}).get("labels_ok"))
        row["cells"][col.key] = cell
    return row


def build(folder: Path, count: int = 500, with_emulation: bool = True, with_tflrt: bool = True,
          keras: bool = True) -> dict:
    """Measure the matrix for every artifact of ``folder``.

    Args:
        folder: an export folder.
        count: MNIST test images per run.
        with_emulation: include the aarch64 columns.
        with_tflrt: include the tflite-runtime 2.14 columns.
        keras: add the reference run's agreement with the Keras source (when findable).

    Returns:
        The matrix as a JSON-ready dict.
    """
    arts = find_artifacts(folder)
    cols = runtimes(with_emulation, with_tflrt)
    x, y = mnist_images(count)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="mnistkit-matrix.") as tmp:
        images = Path(tmp) / "images.npy"
        np.save(images, x)
        raw: dict[str, dict[str, dict]] = {}
        envs: dict[str, dict] = {}
        for col in cols:
            mine = [a for a in arts if a.suffix == f".{col.fmt}"]
            if not mine:
                continue
            log(f"matrix: {col.title}: {len(mine)} artifacts x {count} images")
            t0 = time.perf_counter()
            raw[col.key] = probe_predict(col.target, col.backend, mine, images, Path(tmp) / col.key)
            envs[col.key] = next(iter(raw[col.key].values()), {}).get("env", {})
            envs[col.key]["seconds"] = round(time.perf_counter() - t0, 1)
        keras_cache: dict[Path, np.ndarray | None] = {}
        rows = [_row(art, cols, raw, y, keras_cache if keras else None, images, Path(tmp)) for art in arts]
    return {
        "export_folder": str(folder),
        "images": {"source": "MNIST test set", "first": count},
        "parity_rule": "predicted labels identical to the x86_64 reference run (ai-edge-litert for .tflite, "
                       "onnxruntime for .onnx) on the same images; `pass` alone also means probabilities within "
                       "1e-5 (float32, TFLite float16), 3 float16 steps (ONNX float16, which computes in float16) "
                       "or 3 quantization steps (quantized: the output scale, or 1/256 for a float output), "
                       "`pass (labels; ...)` shows a larger probability difference",
        "runtimes": [{"key": c.key, "title": c.title, "backend": c.backend, "format": c.fmt,
                      "env": envs.get(c.key, {})} for c in cols],
        "artifacts": rows,
        "seconds": round(time.time() - started, 1),
    }


def _cell_text(cell: dict | None, key: str, ref_key: str) -> str:
    if cell is None:
        return "n/a"
    if cell["loads"] is None:
        return f"CRASH: {_short(cell.get('error'))}"
    if not cell["loads"]:
        return f"no load: {_short(cell.get('error'))}"
    if not cell["runs"]:
        return f"loads, no run: {_short(cell.get('error'))}"
    par = cell.get("parity")
    if par is None:
        return "runs (no reference run)"
    if key == ref_key:
        return "reference"
    batch = " (one image at a time only: a batch of images crashes the process)" if cell.get("note") else ""
    if par["ok"]:
        return "pass" + batch
    if par["labels_ok"]:
        return f"pass (labels; max dp {par['max_abs_diff']:.1e} > {par['atol']:.1e})" + batch
    agree = cell.get("agreement_with_keras")
    return (f"parity FAIL: {par['images'] - par['label_mismatches']}/{par['images']} labels, "
            f"max dp {par['max_abs_diff']:.1e}" + ("" if agree is None else f", Keras agreement {agree:.1%}"))


SIGNALS = {"6": "SIGABRT", "11": "SIGSEGV", "4": "SIGILL", "7": "SIGBUS", "9": "SIGKILL"}


def _short(error: str | None) -> str:
    text = (error or "").replace("|", "/")
    m = re.search(r"builtin opcode '(\w+)' version '(\d+)'", text)
    if m:
        return f"{m[1]} v{m[2]} unknown"
    sigs = [SIGNALS.get(n, f"signal {n}") for n in re.findall(r"exit -(\d+)", text)]
    if sigs:
        again = " (also one image at a time)" if "one image at a time too" in text else ""
        return f"the process died with {sigs[0]}{again}"
    return text[:90] + ("..." if len(text) > 90 else "")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _table(matrix: dict, fmt: str) -> list[str]:
    cols = [c for c in matrix["runtimes"] if c["format"] == fmt]
    rows = [r for r in matrix["artifacts"] if r["format"] == fmt]
    if not rows:
        return []
    extra = ["tflite-runtime 2.14 predicted by export/compat.py"] if fmt == "tflite" else []
    head = ["artifact", "size", *(c["title"] for c in cols), *extra, "accuracy (reference)", "agreement with Keras (reference)"]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|" + "---|" * (len(cols) + len(extra)) + "---:|---:|"]
    for row in rows:
        cells = [_cell_text(row["cells"].get(c["key"]), c["key"], row["reference"]) for c in cols]
        ref = row["cells"].get(row["reference"], {})
        if fmt == "tflite":
            compat = row["compat_tflite_runtime_2_14"]
            cells.append("loads" if compat["loads"] else "no load: " + "; ".join(compat["reasons"]))
        lines.append(f"| {row['file']} | {row['size_bytes'] / 1024:.0f} KB | " + " | ".join(cells)
                     + f" | {_pct(ref.get('accuracy'))} | {_pct(ref.get('agreement_with_keras'))} |")
    return lines


def prediction_score(matrix: dict) -> tuple[int, int]:
    """How many measured tflite-runtime 2.14 cells (load or not) export/compat.py predicted right."""
    right = total = 0
    for row in matrix["artifacts"]:
        compat = row.get("compat_tflite_runtime_2_14")
        for key in ("tflrt-x86_64", "tflrt-aarch64"):
            cell = row["cells"].get(key)
            if compat is None or cell is None or cell["loads"] is None:
                continue
            total += 1
            right += compat["loads"] == bool(cell["loads"])
    return right, total


def to_markdown(matrix: dict) -> str:
    """Render the matrix as Markdown: a table per format, a row per artifact, a column per runtime."""
    lines = [
        "# Runtime compatibility matrix",
        "",
        f"Export folder: `{matrix['export_folder']}`; images: the first {matrix['images']['first']} MNIST test "
        "images. Every cell was measured: the file was loaded with `mnistkit.runtime.Classifier.load(path, "
        "backend=...)` in that environment and run on the images. aarch64 runs under qemu-aarch64-static "
        "(Debian bookworm arm64, CPython 3.11, Cortex-A72: a Raspberry Pi 4 with 64-bit Raspberry Pi OS).",
        "",
        f"**pass** = {matrix['parity_rule']}. `reference` marks the reference run itself. Accuracy and "
        "agreement with the Keras source are those of the reference run (the Keras model run on the same images).",
        "",
    ]
    for fmt, title in (("tflite", "TFLite"), ("onnx", "ONNX")):
        table = _table(matrix, fmt)
        if table:
            lines += [f"## {title}", "", *table, ""]
    right, total = prediction_score(matrix)
    if total:
        lines += [f"export/compat.py predicted tflite-runtime 2.14's load result correctly for {right} of "
                  f"{total} measured cells.", ""]
    lines += ["Environments:", ""]
    for c in matrix["runtimes"]:
        env = c["env"]
        pkgs = ", ".join(f"{k} {v}" for k, v in env.items() if k not in ("machine", "python", "seconds"))
        lines.append(f"- {c['title']}: Python {env.get('python', '?')} on {env.get('machine', '?')}; {pkgs}")
    lines += ["", f"Generated by `make compat-matrix` (`python -m mnistkit.tools.pi matrix`) in "
                  f"{matrix['seconds']:.0f} s; timings under emulation say nothing about a real Pi.", ""]
    return "\n".join(lines)
