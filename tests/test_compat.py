"""export/compat.py: predicting whether tflite-runtime 2.14 loads a .tflite file, without TensorFlow.

The fast tests use hand-built one-opcode flatbuffers. The table itself and the prediction on real
exported files are checked against tflite-runtime 2.14 itself, run in the cached venv that
``make pi-setup`` builds (.cache/pi/venv-tflrt); without it those tests skip and say so.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mnistkit.export.compat import (
    BUILTIN_OPERATORS,
    TFLITE_RUNTIME_2_14,
    read_operator_codes,
    tflite_runtime_compat,
)
from mnistkit.runtime.errors import ModelError

flatbuffers = pytest.importorskip("flatbuffers")

from mnistkit.tools.pi import tflrt, tflrt_ops  # noqa: E402 - after the importorskip

CODE = {name: i for i, name in enumerate(BUILTIN_OPERATORS)}


def _model(name: str, version: int) -> bytes:
    return tflrt_ops.minimal_model(CODE[name], version)


def _tflrt_python() -> Path:
    py = tflrt.available()
    if py is None:
        pytest.skip(f"no tflite-runtime 2.14 venv at {tflrt.venv_dir()}; build it with `make pi-setup` "
                    "(python -m mnistkit.tools.pi setup --tflrt)")
    return py


# -- reading operator codes --------------------------------------------------------------------
def test_reads_code_and_version_of_old_and_new_style_opcodes():
    # codes < 127 live in deprecated_builtin_code too; codes >= 127 only in builtin_code
    schema, ops = read_operator_codes(_model("FULLY_CONNECTED", 12))
    assert schema == 3
    assert [(o.name, o.code, o.version) for o in ops] == [("FULLY_CONNECTED", 9, 12)]
    _, ops = read_operator_codes(_model("BROADCAST_ARGS", 1))
    assert CODE["BROADCAST_ARGS"] > 127 and ops[0].name == "BROADCAST_ARGS"


def test_reads_a_file_path(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(_model("CONV_2D", 3))
    assert read_operator_codes(path)[1][0].version == 3


@pytest.mark.parametrize(("name", "version", "loads"), [
    ("FULLY_CONNECTED", 10, True),
    ("FULLY_CONNECTED", 11, False),
    ("FULLY_CONNECTED", 12, False),   # what TF 2.21 writes for dynamic-range models
    ("ADD", 5, True),
    ("BROADCAST_TO", 1, False),       # registered from version 2 only
    ("STABLEHLO_ADD", 1, False),      # newer than tflite-runtime 2.14's enum
])
def test_prediction_for_single_ops(name, version, loads):
    report = tflite_runtime_compat(_model(name, version))
    assert report.loads is loads
    if not loads:
        assert len(report.reasons) == 1 and name in report.reasons[0]


def test_reason_says_which_versions_are_known():
    report = tflite_runtime_compat(_model("FULLY_CONNECTED", 12))
    assert report.reasons == ["FULLY_CONNECTED version 12 (tflite-runtime 2.14 knows 1-10)"]
    manifest = report.to_manifest()
    assert manifest["loads"] is False and manifest["runtime"] == "tflite-runtime 2.14.0"
    assert manifest["ops"] == ["FULLY_CONNECTED v12"]


def test_not_a_tflite_file_is_a_model_error(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="not a TFLite model"):
        tflite_runtime_compat(bad)
    with pytest.raises(ModelError, match="cannot read"):
        tflite_runtime_compat(tmp_path / "missing.tflite")


def test_truncated_file_is_a_model_error():
    data = _model("FULLY_CONNECTED", 1)
    with pytest.raises(ModelError, match="truncated or corrupt"):
        tflite_runtime_compat(data[:12])


def test_check_never_imports_tensorflow():
    code = ("import sys; from mnistkit.export.compat import tflite_runtime_compat as c; "
            "from mnistkit.tools.pi.tflrt_ops import minimal_model as m; c(m(9, 12)); "
            "print(any(k.split('.')[0] in ('tensorflow', 'keras') for k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# -- against tflite-runtime 2.14 itself ---------------------------------------------------------
def test_table_matches_tflite_runtime_2_14():
    """Re-measure every (op, version 1..20) in tflite-runtime 2.14: the stored table must be exact."""
    measured = tflrt_ops.measure(_tflrt_python(), range(len(BUILTIN_OPERATORS)))
    as_ranges = {BUILTIN_OPERATORS[c]: (v[0], v[-1]) for c, v in measured.items()}
    assert all(v == list(range(v[0], v[-1] + 1)) for v in measured.values()), "a registered range has gaps"
    assert as_ranges == TFLITE_RUNTIME_2_14


_LOAD = r"""
import sys
from tflite_runtime.interpreter import Interpreter
for path in sys.argv[1:]:
    try:
        Interpreter(model_path=path).allocate_tensors()
        print("True", path)
    except Exception as exc:
        print("False", path, str(exc).splitlines()[0])
"""


@pytest.mark.slow
def test_prediction_matches_tflite_runtime_on_exported_files(tmp_path, mnist):
    """Export an MLP as float32, dynamic and int8 with `mnistkit export`; predict, then load for real."""
    import keras
    from click.testing import CliRunner

    from mnistkit.models import zoo
    from mnistkit.models.data import to_float
    from mnistkit.tools.cli import cli

    python = _tflrt_python()
    keras.utils.set_random_seed(0)
    model = zoo.build("mlp")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(to_float(mnist.x_train[:5000]), mnist.y_train[:5000], epochs=1, batch_size=128, verbose=0)
    source = tmp_path / "mlp.keras"
    model.save(source)
    out = tmp_path / "exports"
    for mode in ("none", "dynamic", "int8"):
        result = CliRunner().invoke(cli, ["export", str(source), "--format", "tflite", "--quantize", mode,
                                          "--out", str(out), "--parity-limit", "200", "--min-agreement", "0",
                                          "--max-accuracy-delta", "100"])
        assert result.exit_code == 0, result.output
    files = sorted(out.glob("*.tflite"))
    assert [f.name for f in files] == ["mlp_dynamic.tflite", "mlp_int8.tflite", "mlp_none.tflite"]
    proc = subprocess.run([str(python), "-c", _LOAD, *map(str, files)], capture_output=True, text=True, timeout=300)
    actual = {Path(line.split()[1]).name: line.split()[0] == "True" for line in proc.stdout.splitlines()}
    predicted = {f.name: tflite_runtime_compat(f).loads for f in files}
    assert predicted == actual, proc.stdout
    # the case this check exists for: TF 2.21 dynamic-range files do not load, the others do
    assert actual == {"mlp_dynamic.tflite": False, "mlp_int8.tflite": True, "mlp_none.tflite": True}
