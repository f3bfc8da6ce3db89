"""Measure exported models through the runtime (and Keras sources as the baseline).

Per model: file size, load time, single-image latency p50/p90/p99 after warm-up, batched
throughput, accuracy on the MNIST test set, and the peak RSS of a fresh process that loads the
model and classifies one image. Figures are printed, never asserted: timing tests flake.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mnistkit.export.modes import identify
from mnistkit.runtime.errors import MnistkitError, UsageError
from mnistkit.runtime.manifest import manifest_path

MODEL_SUFFIXES = (".tflite", ".onnx", ".keras")


@dataclass
class BenchRow:
    """One measured model (an exported artifact or a Keras baseline)."""

    path: str
    model: str
    format: str
    mode: str
    status: str = "ok"
    backend: str = ""
    size_bytes: int = 0
    load_ms: float | None = None
    latency_us: dict[str, float] = field(default_factory=dict)  # p50/p90/p99 single image
    throughput: dict[str, float] = field(default_factory=dict)  # batch size -> images/s
    accuracy: float | None = None
    peak_rss_mib: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def collect(paths: list[Path]) -> list[Path]:
    """Expand directories into the model files they hold (sorted), keep files as given.

    Raises:
        UsageError: a path holds no model file.
    """
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in MODEL_SUFFIXES)
            if not found:
                raise UsageError(f"{path} holds no .tflite, .onnx or .keras file; pass a folder of exported models")
            out += found
        elif path.suffix in MODEL_SUFFIXES:
            out.append(path)
        else:
            raise UsageError(f"{path} is not a model (.tflite, .onnx or .keras); pass exported models or a folder")
    return list(dict.fromkeys(out))


def identify_model(path: Path) -> tuple[str, str, str]:
    """(model, format, mode) of a benchmarked file: a Keras source is ``(name, "keras", "source")``,
    an exported file is identified by its manifest, else its file name (``"?"`` when neither tells)."""
    if path.suffix == ".keras":
        try:
            return json.loads(manifest_path(path).read_text())["model"], "keras", "source"
        except (OSError, ValueError, KeyError, TypeError):
            return (path.parent.name if path.stem == "model" else path.stem), "keras", "source"
    ident = identify(path)
    return (ident.model, ident.format.value, ident.mode.value) if ident else (path.stem, path.suffix[1:], "?")


def percentiles_us(seconds: list[float]) -> dict[str, float]:
    """p50/p90/p99 in microseconds."""
    arr = np.asarray(seconds) * 1e6
    return {f"p{q}": float(np.percentile(arr, q)) for q in (50, 90, 99)}


def _time_calls(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _throughput(fn, batch: np.ndarray, budget_s: float = 0.5, max_reps: int = 50) -> float:
    fn(batch)
    times = []
    deadline = time.perf_counter() + budget_s
    while len(times) < 3 or (time.perf_counter() < deadline and len(times) < max_reps):
        t0 = time.perf_counter()
        fn(batch)
        times.append(time.perf_counter() - t0)
    return float(len(batch) / np.median(times))


def peak_rss_mib(path: Path, threads: int, image: np.ndarray) -> float:
    """Peak RSS (MiB) of a fresh Python process that loads ``path`` and classifies one image."""
    if path.suffix == ".keras":
        body = ("import keras; m = keras.models.load_model(sys.argv[1], compile=False); m(x)")
    else:
        body = ("from mnistkit.runtime import Classifier; "
                "Classifier.load(sys.argv[1], threads=int(sys.argv[2])).predict_proba(x)")
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork+exec, so it would include this
    # (large) parent process's memory.
    code = ("import sys, numpy as np; x = np.load(sys.argv[3]); " + body +
            "; print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".npy") as f:
        np.save(f.name, image[None].astype(np.float32))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        proc = subprocess.run([sys.executable, "-c", code, str(path), str(threads), f.name],
                              capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode != 0:
        raise MnistkitError(f"fresh-process run failed: {proc.stderr.strip().splitlines()[-1:]}")
    return int(proc.stdout.strip().splitlines()[-1]) / 1024.0


def bench_artifact(path: Path, pixels: np.ndarray, y: np.ndarray | None, *, threads: int,
                   batch_sizes: list[int], rss: bool = True):
    """Measure one exported model through ``mnistkit.runtime.Classifier``, except its latency.

    ``pixels`` are uint8 test images, the form a camera or MNIST itself gives and the runtime's
    fastest input (it means pixel / 255 and gives answers identical to float32 input).

    Returns:
        (row, classifier or None): pass the classifiers to :func:`measure_latency`.
    """
    from mnistkit.runtime import Classifier

    model, fmt, mode = identify_model(path)
    row = BenchRow(str(path), model, fmt, mode, size_bytes=path.stat().st_size)
    try:
        t0 = time.perf_counter()
        clf = Classifier.load(path, threads=threads)
        row.load_ms = (time.perf_counter() - t0) * 1e3
        row.backend = clf.backend
        row.throughput = {str(b): _throughput(clf.predict_proba, pixels[:b]) for b in batch_sizes}
        if y is not None:
            probs = np.concatenate([clf.predict_proba(pixels[i:i + 1000]) for i in range(0, len(pixels), 1000)])
            row.accuracy = float((probs.argmax(axis=1) == y).mean())
        if rss:
            row.peak_rss_mib = peak_rss_mib(path, threads, pixels[0].astype(np.float32) / np.float32(255.0))
    except MnistkitError as exc:
        row.status = f"error: {exc}"
        return row, None
    return row, clf


def measure_latency(measured: list[tuple[BenchRow, object]], pixel: np.ndarray, runs: int, rounds: int = 5) -> None:
    """Fill each row's single-image latency: p50/p90/p99 from uint8 pixels (``latency_us``) and the
    p50 from float32 input (``extra["float_input_p50_us"]``).

    The calls are made in ``rounds`` passes over all models (``runs / rounds`` timed calls each,
    after a warm-up), and each model keeps its pass with the lowest median. On a shared machine,
    slow spells last seconds to minutes (measured here: the same file at 4.1 us, then 6.5 us for a
    minute): interleaving spreads every model over the whole run, so none is compared with another
    measured in a different spell.
    """
    one = pixel[None]
    one_float = one.astype(np.float32) / np.float32(255.0)
    per_round = max(10, runs // rounds)
    best: dict[tuple[int, str], dict[str, float]] = {}
    for _ in range(rounds):
        for i, (row, clf) in enumerate(measured):
            if clf is None:
                continue
            for kind, x in (("uint8", one), ("float32", one_float)):
                fig = percentiles_us(_time_calls(lambda: clf.predict_proba(x), per_round, warmup=10))
                if (i, kind) not in best or fig["p50"] < best[(i, kind)]["p50"]:
                    best[(i, kind)] = fig
    for i, (row, clf) in enumerate(measured):
        if clf is not None:
            row.latency_us = best[(i, "uint8")]
            row.extra = {**row.extra, "float_input_p50_us": best[(i, "float32")]["p50"]}


def bench_keras(path: Path, x: np.ndarray, y: np.ndarray | None, *, batch_sizes: list[int], runs: int,
                rss: bool = True) -> BenchRow:
    """Measure a Keras source: ``model(x)`` latency (the row's figures) and ``model.predict(x)``."""
    from mnistkit.models.source import load_keras

    model_name, fmt, mode = identify_model(path)
    row = BenchRow(str(path), model_name, fmt, mode, backend="keras model(x)", size_bytes=path.stat().st_size)
    try:
        t0 = time.perf_counter()
        model = load_keras(path)
        row.load_ms = (time.perf_counter() - t0) * 1e3
        one = x[:1]
        row.latency_us = percentiles_us(_time_calls(lambda: model(one, training=False), max(20, runs // 10), warmup=5))
        predict = percentiles_us(_time_calls(lambda: model.predict(one, verbose=0), 10, warmup=2))
        row.extra = {f"predict_{k}_us": v for k, v in predict.items()}
        row.throughput = {str(b): _throughput(lambda batch: model.predict(batch, batch_size=len(batch), verbose=0), x[:b], max_reps=10)
                          for b in batch_sizes}
        if y is not None:
            row.accuracy = float((model.predict(x, batch_size=1000, verbose=0).argmax(axis=1) == y).mean())
        if rss:
            row.peak_rss_mib = peak_rss_mib(path, 1, x[0])
    except MnistkitError as exc:
        row.status = f"error: {exc}"
    return row


def format_table(rows: list[BenchRow], batch: int) -> str:
    """A fixed-width table: model, format, mode, status, size, accuracy, latency, throughput, memory."""
    head = f"{'model':<7} {'format':<6} {'mode':<8} {'status':<6} {'size KB':>8} {'accuracy':>8} " \
           f"{'p50 ms':>8} {'p99 ms':>8} {f'img/s@{batch}':>10} {'RSS MiB':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        def num(v, fmt):
            return format(v, fmt) if v is not None else "-"
        status = "ok" if r.status == "ok" else "FAIL"
        lines.append(
            f"{r.model:<7} {r.format:<6} {r.mode:<8} {status:<6} {r.size_bytes / 1024:8.1f} "
            f"{num(r.accuracy and 100 * r.accuracy, '7.2f') + ('%' if r.accuracy else ''):>8} "
            f"{num(r.latency_us.get('p50', None) and r.latency_us['p50'] / 1e3, '8.4f'):>8} "
            f"{num(r.latency_us.get('p99', None) and r.latency_us['p99'] / 1e3, '8.4f'):>8} "
            f"{num(r.throughput.get(str(batch)), '10.0f'):>10} {num(r.peak_rss_mib, '8.1f'):>8}")
        if r.status != "ok":
            lines.append(f"        {r.status}")
    return "\n".join(lines)


def plot(rows: list[BenchRow], path: Path) -> Path:
    """Size vs single-image latency scatter, one colour per format/mode, log axes."""
    from mnistkit.tools.report.plots import _pyplot, save_figure

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    ok = [r for r in rows if r.status == "ok" and r.latency_us]
    kinds = sorted({(r.format, r.mode) for r in ok})
    cmap = plt.get_cmap("tab10")
    for i, kind in enumerate(kinds):
        sel = [r for r in ok if (r.format, r.mode) == kind]
        ax.scatter([r.size_bytes / 1024 for r in sel], [r.latency_us["p50"] for r in sel],
                   label=f"{kind[0]} {kind[1]}", color=cmap(i % 10), marker="o" if kind[0] == "tflite" else "s")
        for r in sel:
            ax.annotate(r.model, (r.size_bytes / 1024, r.latency_us["p50"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("file size (KB)")
    ax.set_ylabel("single-image latency p50 (µs)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title("size vs latency")
    return save_figure(fig, path)
