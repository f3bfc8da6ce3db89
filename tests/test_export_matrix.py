"""Slow: train every zoo model briefly, export the full matrix (6 models x 2 formats x 5 modes) and
check parity on 2,000 test images through the device runtime.

Every combination must either be written and pass its mode's thresholds, or be refused with a
one-line reason and an alternative. Some outcomes are fixed: float32 and float16 always pass, the
non-recurrent models pass every mode, and the SimpleRNN's TFLite int16x8 (which converts but is
broken) is caught by parity and not written. Recurrent TFLite full int8 (int16 gates and cell state,
export/recurrent_int8.py) must be written and pass. On these weakly trained recurrent models another
quantized mode (dynamic, ONNX int8, int16x8) may miss the 99.5% agreement bar; it is then refused,
and the test checks the refusal came from parity on a working file (agreement >= 95%). Set MNISTKIT_MATRIX_REPORT=path to keep the measured
table (export time, size ratio, agreement, accuracy delta per combination).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mnistkit.models.artifacts import sha256_file
from mnistkit.runtime import embedded
from mnistkit.models.zoo import MODEL_NAMES, RECURRENT
from mnistkit.export import parity
from mnistkit.export.mode_rules import DEFAULT_THRESHOLDS
from mnistkit.tools.cli import cli

pytestmark = pytest.mark.slow

PARITY_IMAGES = 2000
# (training images, epochs, batch size, learning rate): seconds each on 2 cores.
TRAIN_PLAN = {
    "linear": (60000, 1, 128, 3e-3), "mlp": (60000, 2, 128, 2e-3), "cnn": (8000, 1, 64, 2e-3),
    "rnn": (8000, 2, 64, 2e-3), "lstm": (8000, 2, 64, 3e-3), "bilstm": (6000, 2, 64, 3e-3),
}
MUST_FAIL = {("rnn", "tflite", "int16x8")}
ROWS: list[dict] = []


class _Sources(dict):
    """Zoo models trained briefly (seeded) on first use and saved as .keras: name -> path."""

    def __init__(self, folder: Path, mnist):
        super().__init__()
        self.folder, self.mnist = folder, mnist

    def __missing__(self, name: str) -> Path:
        import keras

        from mnistkit.models import zoo
        from mnistkit.models.data import to_float

        limit, epochs, batch, lr = TRAIN_PLAN[name]
        keras.utils.set_random_seed(0)
        model = zoo.build(name)
        model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
        x, y = to_float(self.mnist.x_train[:limit]), self.mnist.y_train[:limit]
        model.fit(x, y, epochs=epochs, batch_size=batch, verbose=0)
        self[name] = self.folder / f"{name}.keras"
        model.save(self[name])
        return self[name]


@pytest.fixture(scope="module")
def sources(zoo_sources) -> _Sources:
    return zoo_sources


def _export(source: Path, out: Path, *extra: str, env: dict | None = None):
    args = ["export", str(source), "--format", "all", "--quantize", "all", "--out", str(out),
            "--parity-limit", str(PARITY_IMAGES), "--json", *extra]
    t0 = time.monotonic()
    result = CliRunner().invoke(cli, args, env=env)
    return result, time.monotonic() - t0


class _Exports(dict):
    """The full matrix of each zoo model, exported into one folder on first use: name -> (result, wall s).

    Any test may ask for any model, in any order; the measured rows are collected for the table
    printed at the end of the module (see ``measurements``)."""

    def __init__(self, folder: Path, sources: _Sources):
        super().__init__()
        self.folder, self.sources = folder, sources

    def __missing__(self, name: str):
        result, wall = _export(self.sources[name], self.folder)
        self[name] = result, wall
        if result.stdout.strip().startswith("["):
            for o in json.loads(result.stdout):
                p = o["parity"]
                ROWS.append({"model": name, "format": o["format"], "mode": o["mode"], "ok": o["ok"],
                             "seconds": o["conversion_seconds"], "size_ratio": o["size_ratio_vs_float32"],
                             "agreement": p["agreement"] if p else None,
                             "acc_delta_pp": p["accuracy_delta_pp"] if p else None, "wall": wall,
                             "message": o["message"]})
        return self[name]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, sources) -> _Exports:
    return _Exports(tmp_path_factory.mktemp("exports"), sources)


@pytest.fixture(scope="module", autouse=True)
def measurements():
    """After the module: print the measured matrix (run with -s to see it), and write it to
    $MNISTKIT_MATRIX_REPORT when set."""
    yield
    if not ROWS:
        return
    lines = ["| model | format | mode | result | export s | size vs float32 | agreement | acc delta pp |",
             "|---|---|---|---|---|---|---|---|"]
    for r in ROWS:
        agree = f"{r['agreement']:.2%}" if r["agreement"] is not None else "-"
        delta = f"{r['acc_delta_pp']:+.2f}" if r["acc_delta_pp"] is not None else "-"
        ratio = f"{r['size_ratio']:.2f}x" if r["size_ratio"] else "-"
        verdict = "written" if r["ok"] else "refused"
        lines.append(f"| {r['model']} | {r['format']} | {r['mode']} | {verdict} | {r['seconds']:.1f} | {ratio} | "
                     f"{agree} | {delta} |")
    walls = {r["model"]: r["wall"] for r in ROWS}
    lines.append("\nwall seconds per model (10 combinations, parity included): "
                 + ", ".join(f"{m} {s:.0f}" for m, s in walls.items()))
    text = "\n".join(lines)
    print("\n" + text)
    if os.environ.get("MNISTKIT_MATRIX_REPORT"):
        Path(os.environ["MNISTKIT_MATRIX_REPORT"]).write_text(text + "\n")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_full_matrix(name, sources, exported):
    result, _ = exported[name]
    exports = exported.folder
    assert "Traceback" not in result.output and result.stdout.strip(), result.output
    outcomes = json.loads(result.stdout)
    assert len(outcomes) == 10
    assert result.exit_code == (0 if all(o["ok"] for o in outcomes) else 1), result.output
    for o in outcomes:
        key, target = (name, o["format"], o["mode"]), Path(o["file"])
        manifest_file = target.with_name(target.name + ".json")
        p = o["parity"]
        if key in MUST_FAIL:
            assert not o["ok"] and p is not None and p["agreement"] < 0.5, o  # parity caught it
            assert "worst tensors: " in o["message"] and "simple_rnn_cell" in o["message"], o["message"]
        elif o["mode"] in ("none", "float16") or name not in RECURRENT or key[1:] == ("tflite", "int8"):
            assert o["ok"], o
        elif not o["ok"]:
            # Weakly trained recurrent models have many low-margin digits, so dynamic/int8 may miss
            # the 99.5% bar; such a refusal must still come from parity on a working file.
            assert p is not None and p["agreement"] >= 0.95, o
        if not o["ok"]:
            assert "\n" not in o["message"] and "instead" in o["message"], o["message"]
            assert not target.exists() and not manifest_file.exists()
            continue
        manifest = json.loads(manifest_file.read_text())
        assert manifest["artifact"]["sha256"] == sha256_file(target)
        assert manifest["source"]["sha256"] == sha256_file(sources[name])
        assert (manifest["model"], manifest["format"], manifest["mode"]) == key
        th = DEFAULT_THRESHOLDS[o["mode"]]
        mp = manifest["parity"]
        assert mp["passed"] and mp["count"] == PARITY_IMAGES
        assert mp["agreement"] >= th.min_agreement - 1e-9
        if th.max_delta_p is not None:
            assert mp["max_delta_p"] <= th.max_delta_p
        if th.max_accuracy_delta_pp is not None:
            assert abs(mp["accuracy_delta_pp"]) <= th.max_accuracy_delta_pp + 1e-9
        meta = embedded.verify(target.read_bytes(), target)  # the file carries its essentials too
        assert meta is not None and (meta["model"], meta["format"], meta["mode"]) == key, meta
        assert meta["source_sha256"] == manifest["source"]["sha256"]
        assert meta["parity"]["agreement"] == mp["agreement"] and meta["input"]["shape"] == manifest["input"]["shape"]
        ops = manifest["ops"]
        if o["mode"] == "none":
            assert ops["quantized_share"] == 0.0
        else:
            assert ops["weights_quantized_share"] > 0
        if o["mode"] in ("int8", "int16x8"):
            assert manifest["calibration"]["count"] == 200 and manifest["calibration"]["split"] == "train"
        if o["format"] == "tflite" and o["mode"] == "int8":
            assert manifest["input"]["dtype"] == "int8" and "scale" in manifest["input"]["quantization"]
            assert manifest["output"]["dtype"] == "int8"
            assert o["size_ratio_vs_float32"] <= 0.30, o  # the pretrained issue's goal, any training
        if o["format"] == "tflite" and o["mode"] == "int8" and name in RECURRENT:
            # its manifest says where precision goes (export/diagnose.py), worst tensor first
            assert manifest["layer_errors"][0]["relative_rms"] < 0.5, manifest["layer_errors"]
            # one WHILE loop, every weighted op integer, no float anywhere
            assert manifest["graph"] == "loop" and ops["by_type"]["WHILE"] == 1, ops
            assert ops["quantized_share"] == 1.0 and "DEQUANTIZE" not in ops["by_type"], ops
            assert ops["weights_by_dtype"].keys() <= {"int8", "int32"}, ops
        if o["format"] == "onnx" and o["mode"] in ("int8", "int16x8") and name in ("lstm", "bilstm"):
            assert "LSTM" in ops["left_in_float32"] and manifest["notes"]  # said plainly
    assert not [p for p in exports.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_parity_command_matches_export(sources, exported, tmp_path):
    exported["cnn"], exported["lstm"]  # exported here unless test_full_matrix already did
    exports = exported.folder
    cnn, lstm = sorted(exports.glob("cnn_*.tflite")), sorted(exports.glob("lstm_*.onnx"))
    assert len(cnn) == 5 and len(lstm) >= 2, (cnn, lstm)  # every CNN mode; LSTM float32 and float16 at least
    arts = cnn + lstm
    by_source: dict[str, list[Path]] = {}
    for a in arts:
        by_source.setdefault(a.name.split("_")[0], []).append(a)
    for name, files in by_source.items():
        report = tmp_path / f"{name}.md"
        result = CliRunner().invoke(cli, ["parity", str(sources[name]), *map(str, files), "--limit",
                                          str(PARITY_IMAGES), "--json", "--report", str(report)])
        assert result.exit_code == 0, result.output
        for fig in json.loads(result.stdout):
            recorded = json.loads((exports / (fig["artifact"] + ".json")).read_text())["parity"]
            assert fig["agreement"] == recorded["agreement"]
            assert fig["artifact_accuracy"] == recorded["artifact_accuracy"]
            assert np.isclose(fig["max_delta_p"], recorded["max_delta_p"], rtol=1e-3, atol=1e-6)
        assert "Per-class recall delta" in report.read_text()
    # A changed byte is caught before anything runs.
    victim = tmp_path / arts[0].name
    data = bytearray(arts[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    (tmp_path / (victim.name + ".json")).write_bytes((exports / (arts[0].name + ".json")).read_bytes())
    result = CliRunner().invoke(cli, ["parity", str(sources["cnn"]), str(victim)])
    assert result.exit_code == 1 and "does not match its manifest" in result.output


def test_library_export_api(sources, tmp_path, mnist):
    """mnistkit.export.export gives a Python caller the CLI's guarantees: isolated conversion, parity
    through the runtime, manifest, atomic publish; a refusal writes nothing."""
    from mnistkit.export import export
    from mnistkit.export.onnx import inspect_file
    from mnistkit.models.data import to_float
    from mnistkit.runtime import Classifier

    lines: list[str] = []
    loose = {"min_agreement": 0.95, "max_accuracy_delta_pp": 5.0}  # a briefly trained MLP, 500 images
    (ok,) = export(sources["mlp"], "onnx", "dynamic", tmp_path, parity_limit=500, echo=lines.append, overrides=loose)
    # float32 is never bit-identical to Keras, so a max |delta p| of 0 must refuse the file.
    (refused,) = export(sources["mlp"], ["onnx"], ["none"], tmp_path, parity_limit=500, overrides={"max_delta_p": 0.0})
    assert ok.ok and ok.target == tmp_path / "mlp_dynamic.onnx" and ok.result.count == 500
    manifest = json.loads((tmp_path / "mlp_dynamic.onnx.json").read_text())
    assert manifest["artifact"]["sha256"] == sha256_file(ok.target) and manifest["parity"]["passed"]
    assert not refused.ok and "parity failed" in refused.message and not refused.target.exists()
    assert not (tmp_path / "mlp_none.onnx.json").exists()
    assert any(line.startswith("mlp_dynamic.onnx: acc") for line in lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp_dynamic.onnx", "mlp_dynamic.onnx.json"]
    ops = inspect_file(ok.target)["ops"]
    assert ops["weighted_by_precision"]["int8-weights"]["MatMulInteger"] == 3 and not ops["left_in_float32"]
    x, y = to_float(mnist.x_test[:500]), mnist.y_test[:500]
    src = parity.source_probabilities(sources["mlp"], x)
    fig = parity.compare(src, Classifier.load(ok.target).predict_proba(x), y, artifact=ok.target.name, mode="dynamic")
    assert fig.agreement >= 0.99


def test_native_crash_is_isolated(sources, tmp_path):
    out = tmp_path / "crash"
    result = CliRunner().invoke(cli, ["export", str(sources["linear"]), "--format", "tflite", "--quantize", "all",
                                      "--out", str(out), "--parity-limit", "500", "--json"],
                                env={"MNISTKIT_EXPORT_CRASH_AT": "tflite:dynamic"})
    assert result.exit_code == 1, result.output
    assert result.stdout.strip(), result.output
    outcomes = {o["mode"]: o for o in json.loads(result.stdout)}
    assert "SIGSEGV" in outcomes["dynamic"]["message"] and "instead" in outcomes["dynamic"]["message"]
    assert not (out / "linear_dynamic.tflite").exists()
    for mode in ("none", "float16", "int8", "int16x8"):  # the rest continued in a fresh child
        assert outcomes[mode]["ok"], outcomes[mode]
        assert (out / f"linear_{mode}.tflite").is_file() and (out / f"linear_{mode}.tflite.json").is_file()


def test_ctrl_c_leaves_nothing_partial(sources, tmp_path):
    out = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "mnistkit.tools.cli", "export", str(sources["rnn"]),
                             "--format", "all", "--quantize", "all", "--out", str(out), "--parity-limit", "500"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list(out.glob("*.tflite.json")):
        time.sleep(0.2)
    assert list(out.glob("*.tflite.json")), "no artifact was published in time"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")], names
    models = [n for n in names if not n.endswith(".json")]
    assert models and all(f"{n}.json" in names for n in models), names
    assert all(n[: -len(".json")] in models for n in names if n.endswith(".json")), names


def test_repeated_quantize_options_export_each_mode(sources, tmp_path):
    out = tmp_path / "two"
    result = CliRunner().invoke(cli, ["export", str(sources["linear"]), "--quantize", "none", "--quantize", "int8",
                                      "--out", str(out), "--parity-limit", "500", "--json"])
    assert result.exit_code == 0, result.output
    assert sorted(o["mode"] for o in json.loads(result.stdout)) == ["int8", "none"]
    assert sorted(p.name for p in out.glob("*.tflite")) == ["linear_int8.tflite", "linear_none.tflite"]
