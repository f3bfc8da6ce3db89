"""The device runtime never needs TensorFlow & co.; missing backends name the package to install.

Each check runs in a child process so that blocking modules (``sys.modules[name] = None``, which
makes ``import name`` fail exactly as if it were not installed) cannot leak into other tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from _fixtures_runtime import rt_models  # noqa: F401
from mnistkit.runtime import backends

HEAVY = ("tensorflow", "tf2onnx", "onnx", "matplotlib", "keras", "tf_keras")


def run_child(code: str, *args: str, block: tuple[str, ...] = HEAVY) -> dict:
    """Run ``code`` in a fresh interpreter with ``block`` unimportable; return its JSON output."""
    prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in block)
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


CLASSIFY = """
import json, numpy as np
from mnistkit.runtime import Classifier
x = np.load(sys.argv[1] + "/x_eval.npy")
out = {}
for name, backend in json.loads(sys.argv[2]):
    clf = Classifier.load(sys.argv[1] + "/" + name, backend=backend)
    out[f"{name}:{backend}"] = [clf.backend, [p.label for p in clf.classify(x[:16])]]
heavy = [m for m in sys.modules if m.split(".")[0] in
         ("tensorflow", "tf2onnx", "onnx", "matplotlib", "keras") and sys.modules[m] is not None]
print(json.dumps({"results": out, "heavy": heavy}))
"""


def test_classify_with_every_installed_backend_without_tensorflow(rt_models):
    jobs = [(n, b) for b in ("litert", "tflite-runtime") if backends.installed(b)
            for n in ("mlp_none.tflite", "mlp_int8.tflite")]
    if backends.installed("onnxruntime"):
        jobs.append(("mlp_none.onnx", "onnxruntime"))
    assert jobs, "no backend installed at all"
    out = run_child(CLASSIFY, str(rt_models), json.dumps(jobs))
    assert out["heavy"] == []
    labels = {key: v[1] for key, v in out["results"].items()}
    assert all(out["results"][f"{n}:{b}"][0] == b for n, b in jobs)
    first = next(iter(labels.values()))
    assert all(sum(a == b for a, b in zip(first, v)) >= 15 for v in labels.values())


def test_missing_backends_name_the_package(rt_models):
    code = """
    import json
    from mnistkit.runtime import Classifier
    from mnistkit.runtime.errors import BackendUnavailableError
    out = {}
    for name, backend in [("mlp_none.onnx", None), ("mlp_none.tflite", None),
                          ("mlp_none.tflite", "litert"), ("mlp_none.tflite", "tflite-runtime")]:
        try:
            Classifier.load(sys.argv[1] + "/" + name, backend=backend)
            out[f"{name}:{backend}"] = "loaded"
        except BackendUnavailableError as exc:
            out[f"{name}:{backend}"] = str(exc)
    import platform
    platform.machine = lambda: "armv7l"  # what a 32-bit Raspberry Pi OS reports
    try:
        Classifier.load(sys.argv[1] + "/mlp_none.tflite")
    except BackendUnavailableError as exc:
        out["armv7l"] = str(exc)
    print(json.dumps(out))
    """
    blocked = HEAVY + ("onnxruntime", "ai_edge_litert", "tflite_runtime")
    out = run_child(code, str(rt_models), block=blocked)
    assert "pip install onnxruntime" in out["mlp_none.onnx:None"]
    assert "pip install ai-edge-litert" in out["mlp_none.tflite:None"]
    assert "pip install ai-edge-litert" in out["mlp_none.tflite:litert"]
    assert "pip install tflite-runtime" in out["mlp_none.tflite:tflite-runtime"]
    assert "32-bit ARM (armv7l)" in out["armv7l"] and "64-bit OS" in out["armv7l"]


@pytest.mark.slow
def test_tf_lite_is_the_last_resort(rt_models):
    """Without LiteRT and tflite-runtime, an installed TensorFlow runs .tflite files (slowly)."""
    if not backends.installed("tensorflow"):
        pytest.skip("TensorFlow is not installed")
    code = """
    import json, numpy as np
    from mnistkit.runtime import Classifier
    x = np.load(sys.argv[1] + "/x_eval.npy").astype(np.float32) / 255
    clf = Classifier.load(sys.argv[1] + "/mlp_int8.tflite")
    print(json.dumps({"backend": clf.backend, "p": clf.predict_proba(x[:8]).tolist()}))
    """
    out = run_child(code, str(rt_models), block=("ai_edge_litert", "tflite_runtime"))
    assert out["backend"] == "tensorflow"
    import numpy as np

    from mnistkit.runtime import Classifier

    x = np.load(rt_models / "x_eval.npy").astype(np.float32) / 255
    ref = Classifier.load(rt_models / "mlp_int8.tflite").predict_proba(x[:8])
    assert (np.array(out["p"]).argmax(1) == ref.argmax(1)).all()


@pytest.mark.parametrize("argv", [
    ["-c", "import mnistkit.runtime"],
    ["-c", "import mnistkit.runtime; mnistkit.runtime.Classifier"],
    ["-m", "mnistkit.tools.cli", "classify", "--help"],
    ["-m", "mnistkit.runtime", "--help"],
])
def test_light_imports(argv):
    """`python -X importtime` shows neither TensorFlow nor the other heavy packages being imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0]
                for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert not imported & {"tensorflow", "tf2onnx", "onnx", "matplotlib", "keras", "PIL"}
    if argv[1] == "import mnistkit.runtime":
        assert "numpy" not in imported  # the package itself is lazy
