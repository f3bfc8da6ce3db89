"""The recurrent full-int8 TFLite graph (export/recurrent_int8.py).

Fast: the graph written from small random weights runs on LiteRT, keeps the cell state and gate
pre-activations in int16 (no float tensor anywhere), follows the float reference, and builds with a
static batch of 1. Slow: rnn, lstm and bilstm trained for seconds with two different recipes export
to int8 through the CLI and pass the default int8 thresholds on all 10,000 test images (a second
recipe is the export matrix test's).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from click.testing import CliRunner

from mnistkit.export import recurrent_int8 as R

KINDS = {"rnn": (False, 1), "lstm": (True, 1), "bilstm": (True, 2)}


def _random_model(kind: str, units: int = 16, seed: int = 0) -> R.RecurrentModel:
    lstm, n_dir = KINDS[kind]
    rng = np.random.default_rng(seed)
    g = units * (4 if lstm else 1)
    dirs = [R.Direction(rng.normal(0, 0.4, (28, g)), rng.normal(0, 0.3, (units, g)), rng.normal(0, 0.2, g),
                        backward=bool(k)) for k in range(n_dir)]
    return R.RecurrentModel(lstm, dirs, rng.normal(0, 0.5, (units * n_dir, 10)), rng.normal(0, 0.1, 10))


def _images(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 28, 28)).astype(np.float32)


def _run(data: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data, num_threads=1)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    if list(inp["shape"]) != list(x.shape):
        it.resize_tensor_input(inp["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(inp["index"], np.clip(np.rint(x * 255) - 128, -128, 127).astype(np.int8))
    it.invoke()
    return (it.get_tensor(out["index"]).astype(np.float32) + 128) / 256


def _tensors(data: bytes) -> dict[str, str]:
    from mnistkit.export.tflite_builder import _type_name
    from mnistkit.export.tflite_fixups import _load

    model = _load(data)
    return {f"{sg.name.decode()}:{t.name.decode()}": _type_name(t.type) for sg in model.subgraphs for t in sg.tensors}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_int8_graph_follows_the_float_reference(kind):
    rm = _random_model(kind)
    R.calibrate(rm, _images(200, seed=2))
    x = _images(64)
    got = _run(R.build(rm), x)
    want = R.float_trace(rm, x)["probabilities"]
    err = np.abs(got - want)
    # one int8 output step is 1/256; the int16 state keeps the mean error near it
    assert err.mean() < 0.006 and err.max() < 0.08
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.95


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_state_and_gates_are_int16_and_nothing_is_float(kind):
    rm = _random_model(kind)
    R.calibrate(rm, _images(50))
    types = _tensors(R.build(rm))
    assert "FLOAT32" not in types.values()
    assert types["body:d0/z"] == "INT16" and types["body:d0/rec"] == "INT16"
    if kind == "rnn":  # h is the only state: int16
        assert types["body:d0/h"] == "INT16"
    else:  # the recurrent product is exact (int32) before requantizing; the memory is c
        assert types["body:d0/h"] == "INT8" and types["body:d0/rec_acc"] == "INT32"
        assert types["body:d0/c"] == "INT16" and types["body:d0/sigmoid_f"] == "INT16"
    if kind == "bilstm":
        assert types["body:d1/c"] == "INT16" and "body:d1/t_backward" in types


def test_static_batch_of_one_gives_the_same_answers():
    rm = _random_model("lstm")
    R.calibrate(rm, _images(50))
    x = _images(3)
    free = _run(R.build(rm), x)
    static = R.build(rm, batch=1)
    for i in range(3):
        np.testing.assert_array_equal(_run(static, x[i:i + 1]), free[i:i + 1])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_probe_graph_computes_exactly_what_the_loop_does(kind):
    rm = _random_model(kind)
    R.calibrate(rm, _images(50))
    x = _images(5)
    probe = R.build(rm, probe=True)
    np.testing.assert_array_equal(_run(probe, x), _run(R.build(rm), x))
    assert "main:d0/c@27" in _tensors(probe) if kind != "rnn" else "main:d0/h@27" in _tensors(probe)


_TFLRT_CHILD = r"""
import json, sys
import numpy as np
from tflite_runtime.interpreter import Interpreter
x = np.load(sys.argv[1])
out = {}
for path in sys.argv[2:]:
    it = Interpreter(model_path=path)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], x)
    it.invoke()
    out[path] = it.get_tensor(it.get_output_details()[0]["index"]).tolist()
print(json.dumps(out))
"""


def test_tflite_runtime_2_14_gives_the_same_bytes(tmp_path):
    """tflite-runtime 2.14 (the last release, what many Pis run) computes what LiteRT computes: its
    BATCH_MATMUL subtracts an input zero point that LiteRT's ignores (the graph now declares 0)."""
    import json
    import subprocess

    from test_runtime_tflite_runtime import _python

    python = _python()
    x = _images(1)
    np.save(tmp_path / "x.npy", np.clip(np.rint(x * 255) - 128, -128, 127).astype(np.int8))
    want, paths = {}, []
    for kind in sorted(KINDS):
        rm = _random_model(kind)
        R.calibrate(rm, _images(50))
        data = R.build(rm)
        (tmp_path / f"{kind}.tflite").write_bytes(data)
        paths.append(str(tmp_path / f"{kind}.tflite"))
        want[paths[-1]] = np.rint(_run(data, x) * 256 - 128).astype(int).tolist()
    proc = subprocess.run([python, "-c", _TFLRT_CHILD, str(tmp_path / "x.npy"), *paths],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == want


def test_build_needs_calibration():
    from mnistkit.runtime.errors import ExportError

    with pytest.raises(ExportError, match="calibrate"):
        R.build(_random_model("rnn"))


@pytest.mark.parametrize("name", sorted(KINDS))
def test_float_trace_is_the_keras_model(name):
    import keras

    from mnistkit.models import zoo

    keras.utils.set_random_seed(1)
    model = zoo.build(name)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.15, w.shape).astype(np.float32) for w in model.get_weights()])
    x = _images(7)
    # float64 here, float32 in Keras: 28 steps of rounding differences
    np.testing.assert_allclose(R.float_trace(R.from_keras(model), x)["probabilities"], model(x).numpy(), atol=2e-5)


def test_other_layouts_are_refused():
    import keras

    from mnistkit.runtime.errors import ExportError

    inputs = keras.Input(shape=(28, 28))
    relu_rnn = keras.layers.SimpleRNN(8, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(relu_rnn))
    with pytest.raises(ExportError, match="activation"):
        R.from_keras(model)


# ------------------------------------------------------------------ briefly trained models (slow)

# (training images, epochs, batch size, learning rate), seconds on 2 cores. The other short recipe is
# tests/test_export_matrix.py's TRAIN_PLAN (8,000 or 6,000 images, 2 epochs), whose recurrent int8
# files must be written and pass too; this one differs in data, epochs and learning rate.
RECIPES = {"three-epochs": (4000, 3, 64, 2e-3)}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(RECIPES))
@pytest.mark.parametrize("name", sorted(KINDS))
def test_briefly_trained_recurrent_int8_is_written_and_passes(name, recipe, mnist, tmp_path):
    import keras

    from mnistkit.models import zoo
    from mnistkit.models.data import to_float
    from mnistkit.export.mode_rules import DEFAULT_THRESHOLDS
    from mnistkit.tools.cli import cli

    t_start = time.monotonic()
    limit, epochs, batch, lr = RECIPES[recipe]
    keras.utils.set_random_seed(3)
    model = zoo.build(name)
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    model.fit(to_float(mnist.x_train[:limit]), mnist.y_train[:limit], epochs=epochs, batch_size=batch, verbose=0)
    source = tmp_path / f"{name}.keras"
    model.save(source)
    t0 = time.monotonic()
    result = CliRunner().invoke(cli, ["export", str(source), "--format", "tflite", "--quantize", "int8",
                                      "--out", str(tmp_path / "out"), "--json"])
    print(f"train {t0 - t_start:.1f} s, export + parity {time.monotonic() - t0:.1f} s")
    (o,) = json.loads(result.stdout)
    p = o["parity"]
    assert o["ok"] and result.exit_code == 0, o["message"]
    th = DEFAULT_THRESHOLDS["int8"]
    assert p["count"] == 10000 and p["agreement"] >= th.min_agreement
    assert abs(p["accuracy_delta_pp"]) <= th.max_accuracy_delta_pp + 1e-9
    # <= 0.30x of the float32 file, checked without converting it: a float32 file holds 4 bytes per
    # parameter plus its graph (1.2x that for these models), so 0.35x of 4 bytes per parameter is stricter
    assert (tmp_path / "out" / f"{name}_int8.tflite").stat().st_size <= 0.35 * 4 * model.count_params()
    assert 0.5 < p["source_accuracy"] < 0.985, p  # really a briefly trained model
    if name != "lstm":
        return
    # the per-layer table and the gallery of flipped digits for the written file
    gallery = tmp_path / "flips.png"
    result = CliRunner().invoke(cli, ["parity", str(source), str(tmp_path / "out" / "lstm_int8.tflite"),
                                      "--limit", "300", "--layers", "--gallery", str(gallery)])
    assert result.exit_code == 0, result.output
    table = [ln.split() for ln in result.stdout.splitlines() if ln.strip().startswith("d0/")]
    assert {"d0/c", "d0/z", "d0/h"} <= {row[0] for row in table}, result.stdout
    assert all(float(row[3]) < 0.5 for row in table), result.stdout
    assert gallery.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
