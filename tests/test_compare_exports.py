"""Fast tests of the before/after export comparison (real ONNX files built with onnx.helper)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mnistkit.tools.scripts.compare_exports import compare, main

onnx = pytest.importorskip("onnx")


def _onnx(path, weight_name: str, weights: np.ndarray) -> None:
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["image", weight_name], [f"{weight_name}_out"])], "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(f"{weight_name}_out", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(weights, weight_name)])
    onnx.save(helper.make_model(graph), path)


def _export_folder(folder, weight_name="const_fold_opt__5", weights=None, agreement=1.0):
    folder.mkdir()
    w = np.arange(8, dtype=np.float32).reshape(4, 2) if weights is None else weights
    _onnx(folder / "mlp_none.onnx", weight_name, w)
    (folder / "mlp_none.tflite").write_bytes(b"TFL3 model bytes")
    for name in ("mlp_none.onnx", "mlp_none.tflite"):
        size = (folder / name).stat().st_size
        (folder / f"{name}.json").write_text(json.dumps({
            "artifact": {"file": name, "sha256": "x" * 64, "size_bytes": size}, "model": "mlp",
            "exported_at": str(folder), "conversion_seconds": 1.0,
            "parity": {"agreement": agreement, "size_bytes": size}, "notes": []}))
    return folder


def test_generated_names_do_not_count_but_weights_and_figures_do(tmp_path):
    before = _export_folder(tmp_path / "before")
    renamed = _export_folder(tmp_path / "renamed", weight_name="const_fold_opt__51")
    assert compare(before, renamed) == {"identical": ["mlp_none.tflite"], "same-onnx": ["mlp_none.onnx"],
                                        "differ": [], "missing": []}
    other_weights = _export_folder(tmp_path / "weights", weights=np.ones((4, 2), np.float32))
    assert compare(before, other_weights)["differ"] == ["mlp_none.onnx"]
    other_parity = _export_folder(tmp_path / "parity", agreement=0.99)
    assert compare(before, other_parity)["differ"] == ["mlp_none.onnx", "mlp_none.tflite"]


def test_exit_code_and_missing_files(tmp_path, capsys):
    before = _export_folder(tmp_path / "before")
    after = tmp_path / "after"
    shutil.copytree(before, after)
    assert main([str(before), str(after)]) == 0
    (after / "mlp_none.tflite").unlink()
    assert main([str(before), str(after)]) == 1
    assert "1 missing" in capsys.readouterr().out
    assert main([str(before), str(tmp_path / "nowhere")]) == 2


def _restamp(data: bytes, when: bytes) -> bytes:
    """The same file exported at another time: new export time, digest recomputed."""
    from mnistkit.runtime import embedded

    out = bytearray(data)
    key = out.find(b'"exported_at":"') + len(b'"exported_at":"')
    out[key:key + len(when)] = when
    _, at = embedded.locate(bytes(out))
    out[at:at + 64] = embedded.digest(bytes(out), at).encode()
    return bytes(out)


def test_the_export_time_inside_a_file_does_not_count_but_its_weights_do(tmp_path):
    from mnistkit.runtime import embedded
    from mnistkit.runtime.cli import DEFAULT_MODEL
    from mnistkit.tools.scripts.compare_exports import stable_sha256

    data = DEFAULT_MODEL.read_bytes()
    if embedded.locate(data) is None:
        pytest.skip("the bundled model carries no embedded metadata")
    a, b, c = tmp_path / "a.tflite", tmp_path / "b.tflite", tmp_path / "c.tflite"
    a.write_bytes(data)
    b.write_bytes(_restamp(data, b"1999-01-01T00:00:00"))
    embedded.verify(b.read_bytes(), b)  # still a valid file
    assert a.read_bytes() != b.read_bytes() and stable_sha256(a) == stable_sha256(b)
    changed = bytearray(data)
    changed[len(changed) // 3] ^= 0x01  # a weight byte, far from the metadata block
    c.write_bytes(bytes(changed))
    assert stable_sha256(a) != stable_sha256(c)
