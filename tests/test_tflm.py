"""TFLite Micro target: `mnistkit export --format tflm`, the C sources, the arena search, the tflm backend.

Fast tests: the generated C compiles with gcc and arm-none-eabi-gcc (and round-trips the bytes on
the host), the op resolver compiles against a stand-in of TFLM's resolver header
(tests/data/tflm_api), the operator table matches the kernels in the installed tflite-micro wheel,
refusals. Slow tests: every zoo model trained briefly, exported to tflm with parity on the TFLM
interpreter (PARITY_IMAGES test images), its arena re-checked and its C sources compiled.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mnistkit.export import c_source
from mnistkit.runtime.errors import ExportError
from mnistkit.tools.cli import cli

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "linear_untrained.keras"
TFLM_API = ROOT / "tests" / "data" / "tflm_api"
PARITY_IMAGES = 2000
ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-Os"]

needs_tflm = pytest.mark.skipif(importlib.util.find_spec("tflite_micro") is None,
                                reason="tflite-micro not installed (pip install 'mnistkit[tflm]')")


def _compiler(name: str) -> str:
    path = shutil.which(name)
    if path is None and os.environ.get("CI"):  # .ci/run installs them: a missing one is a CI failure
        pytest.fail(f"{name} not installed; .ci/run should have installed it")
    if path is None:
        pytest.skip(f"{name} not installed (apt-get install {'gcc-arm-none-eabi' if 'arm' in name else 'g++'})")
    return path


def _run(*args, cwd: Path) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed:\n{proc.stderr}"
    return proc.stdout


# ------------------------------------------------------------------------------------------ C sources

HOST_MAIN = """\
#include <stdio.h>
#include <stdint.h>
#include "{name}_model_data.h"
int main(void) {{
  if (((uintptr_t){ident}_model_data) % 16 != 0) return 3;
  fwrite({ident}_model_data, 1, {ident}_model_data_len, stdout);
  return 0;
}}
"""


def _write(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).write_bytes(data)


@pytest.mark.parametrize("lang", ["c++", "c"])
def test_model_data_round_trips_on_the_host(tmp_path, lang):
    """The array holds exactly the model bytes, 16-byte aligned, compiled as C++ and as C."""
    cc = _compiler("g++" if lang == "c++" else "gcc")
    data = bytes(np.random.default_rng(1).integers(0, 256, 1001, dtype=np.uint8))
    _write(tmp_path, c_source.model_data_files("cnn_int8_tflm", data, arena_min=1000, arena_recommended=2048,
                                               source="test"))
    (tmp_path / "main.c").write_text(HOST_MAIN.format(name="cnn_int8_tflm", ident="cnn_int8_tflm"))
    src_lang = ["-x", lang, "cnn_int8_tflm_model_data.cc", "-x", lang, "main.c"]
    std = ["-std=c++17"] if lang == "c++" else ["-std=c11"]
    _run(cc, *std, "-Wall", "-Wextra", "-Werror", *src_lang, "-o", "prog", cwd=tmp_path)
    if lang == "c":  # the usual mix: the .cc built as C++, linked into a C program
        _run(_compiler("g++"), "-Wall", "-Werror", "-c", "cnn_int8_tflm_model_data.cc", "-o", "data.o", cwd=tmp_path)
        _run(cc, "-Wall", "-Werror", "-c", "main.c", "-o", "main.o", cwd=tmp_path)
        _run(cc, "main.o", "data.o", "-o", "prog", cwd=tmp_path)
    out = subprocess.run([str(tmp_path / "prog")], capture_output=True)
    assert out.returncode == 0, "array not 16-byte aligned"
    assert out.stdout == data


def test_model_data_compiles_for_cortex_m(tmp_path):
    """arm-none-eabi-gcc compiles the .cc unchanged; the symbol holds len(data) bytes, 16-aligned."""
    cc = _compiler("arm-none-eabi-gcc")
    data = bytes(range(256)) * 3
    _write(tmp_path, c_source.model_data_files("mlp_int8_tflm", data, arena_min=1, arena_recommended=1024,
                                               source="test"))
    _run(cc, *ARM_FLAGS, "-Wall", "-Wextra", "-Werror", "-c", "mlp_int8_tflm_model_data.cc", "-o", "m.o",
         cwd=tmp_path)
    nm = _run(_compiler("arm-none-eabi-nm"), "-S", "m.o", cwd=tmp_path)
    sizes = {ln.split()[-1]: int(ln.split()[1], 16) for ln in nm.splitlines() if len(ln.split()) == 4}
    assert sizes["mlp_int8_tflm_model_data"] == len(data)
    sections = _run(_compiler("arm-none-eabi-readelf"), "-S", "-W", "m.o", cwd=tmp_path)
    rodata = next(ln for ln in sections.splitlines() if ".rodata" in ln and "rel" not in ln)
    assert int(rodata.split()[-1]) >= 16, rodata


def test_c_identifier():
    assert c_source.c_identifier("cnn_int8_tflm") == "cnn_int8_tflm"
    assert c_source.c_identifier("9x-model.v2") == "m_9x_model_v2"


RESOLVER_MAIN = """\
#include "{name}_op_resolver.h"
int main() {{
  {ident}_op_resolver resolver;
  if ({ident}_register_ops(resolver) != kTfLiteOk) return 2;
  // Registering again must fail: every operator is already there and the resolver is full.
  if ({ident}_register_ops(resolver) != kTfLiteError) return 3;
  return resolver.GetRegistrationLength() == {count} ? 0 : 4;
}}
"""


@pytest.mark.parametrize("compiler", ["g++", "arm-none-eabi-g++"])
def test_op_resolver_registers_exactly_the_models_ops(tmp_path, compiler):
    from mnistkit.export.tflm_ops import resolver_methods

    cxx = _compiler(compiler)
    ops = ["CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED", "SOFTMAX", "RESHAPE", "CONV_2D", "WHILE",
           "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    methods = resolver_methods(ops)
    assert len(methods) == 7
    _write(tmp_path, c_source.op_resolver_file("cnn_int8_tflm", methods, ops, source="test"))
    (tmp_path / "main.cc").write_text(RESOLVER_MAIN.format(name="cnn_int8_tflm", ident="cnn_int8_tflm", count=7))
    if compiler.startswith("arm"):
        _run(cxx, *ARM_FLAGS, "-std=c++17", "-Wall", "-Werror", "-I", TFLM_API, "-c", "main.cc", "-o", "main.o",
             cwd=tmp_path)
        return
    _run(cxx, "-std=c++17", "-Wall", "-Werror", "-I", TFLM_API, "main.cc", "-o", "prog", cwd=tmp_path)
    assert subprocess.run([str(tmp_path / "prog")]).returncode == 0


def test_unsupported_operator_is_named():
    from mnistkit.export.tflm_ops import resolver_methods

    with pytest.raises(ExportError, match="no kernel for BIDIRECTIONAL_SEQUENCE_LSTM"):
        resolver_methods(["FULLY_CONNECTED", "BIDIRECTIONAL_SEQUENCE_LSTM"])


def test_free_batch_model_is_refused():
    """The bundled default model has a free batch: TFLM cannot run it and check() says why."""
    from mnistkit.export import tflm

    with pytest.raises(ExportError, match="dynamic shape"):
        tflm.check((ROOT / "runtime" / "assets" / "default.tflite").read_bytes())


@needs_tflm
@pytest.mark.parametrize("kind", ["rnn", "lstm", "bilstm"])
def test_recurrent_micro_graph_runs_on_tflm_like_the_litert_graph(kind):
    """The TFLM variant of the int8 recurrent graph (no int32-output BATCH_MATMUL, no int16 GATHER)
    prepares on the TFLM interpreter and answers like the LiteRT int8 graph of the same weights,
    with the same precision scheme (int8 hidden state of an LSTM, int16 cell state and gates)."""
    from tests.test_recurrent_int8 import _images, _random_model, _run, _tensors
    from mnistkit.export import recurrent_int8 as R
    from mnistkit.export import tflm

    rm = _random_model(kind)
    R.calibrate(rm, _images(100, seed=2))
    micro = R.build(rm, batch=1, micro=True)
    assert not {"BATCH_MATMUL", "GATHER"} & set(tflm.operators(micro))
    tflm.check(micro)
    types = _tensors(micro)
    assert "FLOAT32" not in types.values() and types["body:d0/z"] == "INT16"
    if kind != "rnn":
        assert types["body:d0/h"] == "INT8" and types["body:d0/c"] == "INT16"
    x = _images(12)
    litert = _run(R.build(rm), x)
    it = tflm._interpreter(micro, 1 << 20)
    got = []
    for img in x:
        it.set_input(np.clip(np.rint(img[None] * 255) - 128, -128, 127).astype(np.int8), 0)
        it.invoke()
        got.append((it.get_output(0).astype(np.float32)[0] + 128) / 256)
    got = np.array(got)
    # the only difference is where the products are requantized to int16 (int64 vs int32 accumulators)
    assert (got.argmax(1) == litert.argmax(1)).all()
    assert np.abs(got - litert).max() <= 2 / 256


def test_micro_recurrent_graph_is_batch_one():
    from tests.test_recurrent_int8 import _images, _random_model
    from mnistkit.export import recurrent_int8 as R

    rm = _random_model("lstm")
    R.calibrate(rm, _images(20))
    with pytest.raises(ExportError, match="batch 1"):
        R.build(rm, micro=True)


@needs_tflm
def test_operator_table_matches_the_installed_wheel():
    """Every operator the table allows has a kernel compiled into the installed tflite-micro."""
    from mnistkit.export.tflm_ops import RESOLVER_METHODS

    so = Path(importlib.util.find_spec("tflite_micro.python.tflite_micro._runtime").origin).read_bytes()
    missing = [op for op in RESOLVER_METHODS if b"Register_" + op.encode() + b"Ev" not in so]
    assert not missing
    assert b"Register_BIDIRECTIONAL_SEQUENCE_LSTMEv" not in so  # the refusal above is real


@needs_tflm
def test_tflm_backend_runs_the_bundled_model_like_litert(mnist):
    """The bundled CNN int8 on TFLM's reference kernels gives LiteRT's answers, float or uint8 input."""
    from mnistkit.models.data import to_float
    from mnistkit.runtime import Classifier

    path = ROOT / "runtime" / "assets" / "default.tflite"
    micro = Classifier.load(path, backend="tflm")
    assert micro.backend == "tflm" and micro.describe()["fixed_batch"] == 1
    p = micro.predict_proba(mnist.x_test[:40])
    assert np.array_equal(p, micro.predict_proba(to_float(mnist.x_test[:40])))
    q = Classifier.load(path, backend="litert").predict_proba(mnist.x_test[:40])
    assert (p.argmax(1) == q.argmax(1)).mean() >= 0.975 and (p.argmax(1) == mnist.y_test[:40]).mean() >= 0.95


def test_tflm_backend_is_never_the_default():
    from mnistkit.runtime import backends

    assert "tflm" not in backends.choose("tflite", None)
    with pytest.raises(Exception, match="cannot run .onnx"):
        backends.choose("onnx", "tflm")


# ------------------------------------------------------------------------------------------ CLI refusals


@pytest.mark.parametrize("mode", ["none", "dynamic", "int16x8"])
def test_non_int8_mode_is_a_usage_error(tmp_path, mode):
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["export", str(FIXTURE), "--format", "tflm", "--quantize", mode, "--out", str(out)])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert "tflm" in lines[-1] and "int8" in lines[-1] and "Traceback" not in res.output
    assert not out.exists()


def test_library_refuses_non_int8_tflm():
    from mnistkit.export.modes import ExportConfig
    from mnistkit.runtime.errors import UsageError

    with pytest.raises(UsageError, match="int8 only"):
        ExportConfig("tflm", "float16")


def test_artifact_names():
    from mnistkit.export.modes import artifact_name
    from mnistkit.export.tflm import companion_names

    from mnistkit.export.modes import Format, parse_artifact_name
    from mnistkit.export.pipeline import expand

    assert artifact_name("cnn", "tflm", "int8") == "cnn_int8_tflm.tflite"
    assert parse_artifact_name("cnn_int8_tflm.tflite").format is Format.TFLM
    assert parse_artifact_name("cnn_int8.tflite").format is Format.TFLITE
    assert expand(["all"], Format) == [Format.TFLITE, Format.ONNX]  # tflm only when named
    assert expand(["all", "tflm"], Format)[-1] is Format.TFLM
    assert companion_names("cnn_int8_tflm.tflite") == [
        "cnn_int8_tflm_model_data.h", "cnn_int8_tflm_model_data.cc", "cnn_int8_tflm_op_resolver.h"]


# ------------------------------------------------------------------------------------------ slow: the zoo


@pytest.fixture(scope="module")
def tflm_exports(tmp_path_factory, zoo_sources):
    """Every zoo model trained briefly (seeded; shared with test_export_matrix), exported with
    `mnistkit export --format tflm`."""
    if importlib.util.find_spec("tflite_micro") is None:
        pytest.skip("tflite-micro not installed")
    sources = zoo_sources
    out = tmp_path_factory.mktemp("tflm-exports")
    results = {}
    from mnistkit.models.zoo import MODEL_NAMES

    for name in MODEL_NAMES:
        res = CliRunner().invoke(cli, ["export", str(sources[name]), "--format", "tflm", "--out", str(out),
                                       "--parity-limit", str(PARITY_IMAGES), "--json"])
        outcomes = json.loads(res.stdout[res.stdout.index("["):])
        (out / f"{name}.outcome.json").write_text(json.dumps(outcomes))  # as `make tflm-exports` keeps them
        results[name] = (res.exit_code, outcomes, res.output)
    return out, results


@pytest.mark.slow
@pytest.mark.parametrize("name", ["linear", "mlp", "cnn", "rnn", "lstm", "bilstm"])
def test_zoo_model_exports_to_tflm(tflm_exports, name, tmp_path):
    out, results = tflm_exports
    code, outcomes, output = results[name]
    (o,) = outcomes
    recurrent = name in ("rnn", "lstm", "bilstm")
    assert o["ok"] and code == 0, output  # the recurrent ones as the TFLM variant of their int8 graph
    target = Path(o["file"])
    assert target.name == f"{name}_int8_tflm.tflite"
    assert o["parity"]["passed"] and o["parity"]["count"] == PARITY_IMAGES
    manifest = json.loads(target.with_name(target.name + ".json").read_text())
    assert manifest["format"] == "tflm" and manifest["mode"] == "int8" and manifest["parity"]["backend"] == "tflm"
    assert manifest["input"]["shape"] == [1, 28, 28] and manifest["input"]["dtype"] == "int8"
    tflm = manifest["tflm"]
    assert tflm["flash_bytes"] == target.stat().st_size
    assert "arena" in output and "flash" in output  # the check line
    # The arena is the minimum: the model runs in it and not in 64 bytes less.
    from mnistkit.export.tflm import _runs

    data = target.read_bytes()
    assert _runs(data, tflm["arena_min_bytes"]) and not _runs(data, tflm["arena_min_bytes"] - 64)
    assert tflm["arena_recommended_bytes"] >= tflm["arena_min_bytes"]
    # The C sources: compile for the host (round-trip the bytes) and for Cortex-M.
    stem = target.stem
    for f in (f"{stem}_model_data.h", f"{stem}_model_data.cc", f"{stem}_op_resolver.h"):
        shutil.copy(out / f, tmp_path / f)
    (tmp_path / "main.c").write_text(HOST_MAIN.format(name=stem, ident=stem))
    _run(_compiler("g++"), "-Wall", "-Werror", f"{stem}_model_data.cc", "-x", "c++", "main.c", "-o", "prog",
         cwd=tmp_path)
    assert subprocess.run([str(tmp_path / "prog")], capture_output=True).stdout == data
    _run(_compiler("arm-none-eabi-gcc"), *ARM_FLAGS, "-c", f"{stem}_model_data.cc", cwd=tmp_path)
    n_ops = len(tflm["resolver_methods"])
    (tmp_path / "r.cc").write_text(RESOLVER_MAIN.format(name=stem, ident=stem, count=n_ops))
    _run(_compiler("g++"), "-std=c++17", "-I", TFLM_API, "r.cc", "-o", "r", cwd=tmp_path)
    assert subprocess.run([str(tmp_path / "r")]).returncode == 0
    # Only operators with a TFLM kernel, and the non-recurrent graphs hold no loop.
    if not recurrent:
        assert "WHILE" not in tflm["operators"]
    else:  # the loop, without the int32-output product TFLM's BATCH_MATMUL refuses
        assert "WHILE" in tflm["operators"] and "BATCH_MATMUL" not in tflm["operators"]


@pytest.mark.slow
def test_tflm_backend_classifies_like_litert(tflm_exports, mnist):
    """The runtime's tflm backend and LiteRT agree on the exported CNN; parity and classify work on it."""
    from mnistkit.models.data import to_float
    from mnistkit.runtime import Classifier

    out, results = tflm_exports
    path = out / "cnn_int8_tflm.tflite"
    x = to_float(mnist.x_test[:100])
    micro = Classifier.load(path, backend="tflm")
    assert micro.backend == "tflm" and micro.describe()["fixed_batch"] == 1
    litert = Classifier.load(path)
    assert (micro.predict_proba(x).argmax(1) == litert.predict_proba(x).argmax(1)).mean() >= 0.99
    assert np.array_equal(micro.predict_proba(mnist.x_test[:20]), micro.predict_proba(x[:20]))  # uint8 input
    source = Path(json.loads(path.with_name(path.name + ".json").read_text())["source"]["file"])
    # 2,000 images, as the export itself: on 300 a single flipped digit is 0.33 pp, over the 0.2 pp threshold
    res = CliRunner().invoke(cli, ["parity", str(source), str(path), "--backend", "tflm", "--limit", "2000"])
    assert res.exit_code == 0, res.output
    assert "(tflm)" in res.output and "PASS" in res.output
    res = CliRunner().invoke(cli, ["classify", "--model", str(path), "--backend", "tflm", "--samples", "--json"])
    assert res.exit_code == 0, res.output


def test_example_sketch_uses_the_generated_symbols(tmp_path):
    """examples/tflm_mnist includes the files and names the symbols the exporter generates."""
    import re

    sketch = (ROOT / "examples" / "tflm_mnist" / "tflm_mnist.ino").read_text()
    files = c_source.model_data_files("cnn_int8_tflm", b"\0" * 32, arena_min=10, arena_recommended=1024, source="t")
    files.update(c_source.op_resolver_file("cnn_int8_tflm", ["AddConv2D"], ["CONV_2D"], source="t"))
    text = "\n".join(v.decode() for v in files.values())
    for inc in re.findall(r'#include "(cnn_int8_tflm[^"]+)"', sketch):
        assert inc in files
    used = set(re.findall(r"\b(cnn_int8_tflm_\w+|CNN_INT8_TFLM_\w+)\b", sketch))
    assert used and all(re.search(rf"\b{u}\b", text) for u in used), used
    assert "sample_digit" in (ROOT / "examples" / "tflm_mnist" / "sample_digit.h").read_text()


def test_board_fit_rule():
    from mnistkit.tools.report.tflm import BOARDS, fits

    nano = next(b for b in BOARDS if "Nano 33" in b.name)
    esp = next(b for b in BOARDS if "ESP32-S3" in b.name)
    assert fits(nano, 100 * 1024, 45 * 1024)
    assert not fits(nano, 100 * 1024, 200 * 1024)  # 200 KB arena > 75% of 256 KB RAM
    assert fits(esp, 100 * 1024, 200 * 1024)
    assert not fits(nano, 900 * 1024, 1024)  # 900 KB array > 75% of 1 MB flash


@pytest.mark.slow
def test_report_section_lists_every_delivered_model(tflm_exports):
    from mnistkit.tools.report.tflm import section

    out, results = tflm_exports
    text = section(out)
    delivered = [n for n, (code, outcomes, _) in results.items() if outcomes[0]["ok"]]
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith("| model")]
    assert [r.split("|")[1].strip() for r in rows] == delivered
    for name, (_, outcomes, _) in results.items():
        if name not in delivered:
            assert f"- {name}: {outcomes[0]['message'].split('; not written')[0]}" in text.split("Not delivered")[1]


@pytest.mark.slow
def test_tflm_backend_never_imports_tensorflow(tflm_exports):
    import sys

    out, _ = tflm_exports
    code = ("import sys, numpy as np; from mnistkit.runtime import Classifier; "
            "c = Classifier.load(sys.argv[1], backend='tflm'); c.predict_proba(np.zeros((2, 28, 28), np.float32)); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]; "
            "print(c.backend, bad)")
    proc = subprocess.run([sys.executable, "-c", code, str(out / "mlp_int8_tflm.tflite")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "tflm []"
