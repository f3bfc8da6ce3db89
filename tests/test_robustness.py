"""The robustness benchmark: shifts on real MNIST digits, the real bundled model, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mnistkit.runtime.preprocess import prepare
from mnistkit.tools.robustness import benchmark as robustness, shifts
from mnistkit.tools.cli import cli

pytest.importorskip("scipy")

DEFAULT_MODEL = "runtime/assets/default.tflite"


@pytest.fixture(scope="module")
def digits(mnist):
    idx = np.random.default_rng(5).permutation(len(mnist.x_test))[:120]
    return mnist.x_test[idx], mnist.y_test[idx]


def ink(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).sum(axis=1)


@pytest.mark.parametrize("shift", shifts.SHIFTS, ids=lambda s: s.name)
def test_every_shift_is_seeded_and_changes_the_digits(shift, digits):
    x, _ = digits
    a = shift.apply(x, seed=3, index=1)
    assert a.shape == x.shape and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a, shift.apply(x, seed=3, index=1))
    clean = x.astype(np.float32) / 255
    assert np.abs(a - clean).mean() > 0.01, "the shift left the digits (almost) unchanged"


def test_shift_directions(digits):
    x, _ = digits
    clean = x.astype(np.float32) / 255
    assert (ink(shifts.thicken(x, None)) > 1.3 * ink(clean)).all()
    assert (ink(shifts.thin(x, None)) < 0.8 * ink(clean)).all()
    assert (ink(shifts.broken(x, np.random.default_rng(0))) < ink(clean)).all()
    # coarser capture loses more: distance to the clean digit grows as the side shrinks
    err = [np.abs(shifts.lowres(s)(x, None) - clean).mean() for s in (16, 12, 8)]
    assert err[0] < err[1] < err[2]
    moved = shifts.to_border(x, np.random.default_rng(0))
    touches = (moved[:, 0].max(1) > 0) | (moved[:, -1].max(1) > 0) | (moved[:, :, 0].max(1) > 0) | (moved[:, :, -1].max(1) > 0)
    assert touches.all()
    # random parameters come from the seed: another seed moves digits differently
    assert not np.array_equal(shifts.rotate(x, np.random.default_rng([0, 6])), shifts.rotate(x, np.random.default_rng([1, 6])))


def test_inverted_digits_are_recovered_by_the_preprocessing(digits):
    x, _ = digits
    back = np.stack([prepare(img) for img in shifts.invert(x[:20], None)])
    # the preprocessing re-fits the digit into 20x20, so compare the ink's place, not the pixels
    corr = [np.corrcoef(b.ravel(), c.ravel())[0, 1] for b, c in zip(back, x[:20].astype(np.float32))]
    assert np.median(corr) > 0.7


def test_benchmark_on_the_bundled_model(digits):
    from mnistkit.runtime import Classifier

    x, y = digits
    bench = robustness.build(x, y, seed=0, photos=10)
    assert bench.names == ["clean", *(s.name for s in shifts.SHIFTS), "photos"]
    predict = Classifier.load(DEFAULT_MODEL).predict_proba
    acc = robustness.evaluate(predict, bench)
    assert acc["clean"] >= 0.97
    assert acc["mean"] == pytest.approx(np.mean([acc[s.name] for s in shifts.SHIFTS]))
    assert acc["worst"] == min(acc[s.name] for s in shifts.SHIFTS)
    # a predictor that ignores its input is at chance level everywhere: the benchmark can fail a model
    always_one = robustness.evaluate(lambda imgs: np.tile(np.eye(10)[1], (len(imgs), 1)), bench)
    assert always_one["mean"] < 0.25
    table = robustness.format_table({"default": acc, "constant": always_one}, bench)
    assert "lowres-8" in table and "photos" in table and "worst" in table


def test_evaluate_robustness_cli():
    result = CliRunner().invoke(cli, ["evaluate", DEFAULT_MODEL, "--robustness", "--limit", "60", "--photos", "0", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{"):])
    assert data["count"] == 60
    names = {"clean", *(s.name for s in shifts.SHIFTS)}
    assert names <= set(data["accuracy"]) and "photos" not in data["accuracy"]
    assert all(0.0 <= data["accuracy"][n] <= 1.0 for n in names)
    text = CliRunner().invoke(cli, ["evaluate", DEFAULT_MODEL, "--robustness", "--limit", "30", "--photos", "0"])
    assert text.exit_code == 0 and "broken" in text.output and "mean" in text.output


def test_matrix_json_and_report_section(tmp_path):
    from mnistkit.tools.report import robustness as report_robustness
    from mnistkit.tools.robustness import matrix as robustness_matrix

    out = tmp_path / "robustness.json"
    code = robustness_matrix.main([f"default.tflite={DEFAULT_MODEL}", f"copy={DEFAULT_MODEL}", "--out", str(out),
                                   "--limit", "50", "--photos", "0"])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["count"] == 50 and set(doc["models"]) == {"default.tflite", "copy"}
    assert doc["models"]["copy"] == {**doc["models"]["default.tflite"], "path": DEFAULT_MODEL}
    parts = report_robustness.section(out, tmp_path, lambda p: p.name, default_label="default.tflite")
    text = "\n".join(parts)
    assert (tmp_path / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| lowres-8 |" in text and "mean over shifts" in text
    acc = doc["models"]["default.tflite"]
    mean_line = next(line for line in text.splitlines() if "mean accuracy over the shifts" in line)
    assert mean_line.endswith("met") == (acc["mean"] >= 0.97)
    assert report_robustness.section(tmp_path / "missing.json", tmp_path, str) == []
    assert robustness_matrix.main(["no-equals-sign", "--out", str(out)]) == 2


def test_matrix_append_keeps_models_and_refuses_other_settings(tmp_path):
    from mnistkit.tools.robustness import matrix as robustness_matrix

    out = tmp_path / "r.json"
    base = ["--out", str(out), "--limit", "30", "--photos", "0"]
    assert robustness_matrix.main([f"a={DEFAULT_MODEL}", *base]) == 0
    assert robustness_matrix.main([f"b={DEFAULT_MODEL}", *base, "--append"]) == 0
    doc = json.loads(out.read_text())
    assert list(doc["models"]) == ["a", "b"] and doc["models"]["a"]["mean"] == doc["models"]["b"]["mean"]
    assert robustness_matrix.main([f"c={DEFAULT_MODEL}", "--out", str(out), "--limit", "40", "--photos", "0", "--append"]) == 2
    assert list(json.loads(out.read_text())["models"]) == ["a", "b"]
