"""`mnistkit bench` on real exported models: figures present and consistent, bad input refused."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from _fixtures_runtime import rt_models  # noqa: F401
from mnistkit.models.data import load_mnist
from mnistkit.runtime import Classifier
from mnistkit.tools.cli import cli


def test_bench_json_and_plot(rt_models, mnist_dir, tmp_path):
    files = [rt_models / "mlp_int8.tflite", rt_models / "mlp_none.onnx"]
    chart = tmp_path / "chart.png"
    result = CliRunner().invoke(cli, ["bench", *map(str, files), "--no-keras", "--no-rss", "--runs", "20",
                                      "--batch-sizes", "1,4", "--limit", "256", "--json", "--plot", str(chart),
                                      "--data-dir", str(mnist_dir)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert [r["path"] for r in rows] == list(map(str, files))
    test = load_mnist(mnist_dir)
    for row, path in zip(rows, files):
        assert row["status"] == "ok" and row["size_bytes"] == path.stat().st_size
        lat = row["latency_us"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] and row["extra"]["float_input_p50_us"] > 0
        assert set(row["throughput"]) == {"1", "4"} and min(row["throughput"].values()) > 0
        labels = Classifier.load(path).predict_proba(test.x_test[:256]).argmax(1)
        assert row["accuracy"] == float((labels == test.y_test[:256]).mean())
    assert chart.is_file() and chart.read_bytes()[:4] == b"\x89PNG"


def test_bench_refuses_a_folder_without_models(tmp_path):
    result = CliRunner().invoke(cli, ["bench", str(tmp_path)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
