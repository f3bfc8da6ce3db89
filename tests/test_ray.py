"""--engine ray / classify_dataset on a real local Ray instance: same labels as the local engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mnistkit.runtime.cli import DEFAULT_MODEL, classify

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="no bundled default model")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(mnist, tmp_path_factory):
    """2,000 MNIST test digits as PNG plus 40 photo-like JPEGs and one corrupt file."""
    from PIL import Image

    root = tmp_path_factory.mktemp("ray_images")
    for i in range(2000):
        Image.fromarray(mnist.x_test[i]).save(root / f"{i:05d}.png")
    for i in range(40):
        big = np.asarray(Image.fromarray(mnist.x_test[i]).resize((90, 90), Image.Resampling.BILINEAR))
        Image.fromarray((235 - big.astype(np.int32) * 200 // 255).astype(np.uint8)).save(root / f"p{i:03d}.jpg")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def test_ray_cli_matches_local_engine(local_ray, folder, tmp_path):
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    res = CliRunner().invoke(classify, [str(folder), "--output", str(local)])
    assert res.exit_code == 1, res.output  # the corrupt file
    res = CliRunner().invoke(classify, ["--engine", "ray", str(folder), "--output", str(remote),
                                        "--num-actors", "2"])
    assert res.exit_code == 1, res.output
    want = {r["source"]: r for r in map(json.loads, local.read_text().splitlines())}
    got = {r["source"]: r for r in map(json.loads, remote.read_text().splitlines())}
    assert set(got) == set(want) and len(got) == 2041
    assert "not an image" in got[str(folder / "corrupt.png")]["error"]
    assert all(got[s].get("label") == want[s].get("label") for s in want)
    assert all(got[s]["top_k"] == want[s]["top_k"] for s in want if "label" in want[s])


def test_classify_dataset_on_arrays(local_ray, mnist):
    from mnistkit.runtime.ray_data import classify_dataset

    x = np.concatenate([mnist.x_test[:300], np.zeros((1, 28, 28), np.uint8)])  # a blank image
    out = classify_dataset(ray.data.from_numpy(x), DEFAULT_MODEL, top_k=2, num_actors=1).to_pandas()
    assert list(out.columns) == ["label", "confidence", "top_k_labels", "top_k_probs", "error"]
    assert (out["label"][:300].to_numpy() == mnist.y_test[:300]).mean() > 0.97
    assert out["label"].iloc[-1] == -1 and "no digit" in out["error"].iloc[-1]
    assert all(len(t) == 2 for t in out["top_k_labels"][:300])
