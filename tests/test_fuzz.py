"""Fuzzing in CI (issue 15): a bounded share of seeded mutants of model files and images, each run
in a child process with a timeout and a memory cap, must end as an answer or a typed one-line
error: no traceback, no signal, no hang, no NaN, no memory over the cap. ``make fuzz`` runs longer.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

from mnistkit.tools.fuzz import harness
from mnistkit.tools.fuzz.mutators import mutant, onnx_fields, tflite_fields

MODELS, IMAGES = 2000, 2000


@pytest.mark.slow
def test_bounded_fuzzing_finds_no_failure():
    bases = harness.default_bases()
    cases = (harness.make_cases("model", bases["tflite"] + bases["onnx"], MODELS, 0)
             + harness.make_cases("image", bases["image"], IMAGES, 0))
    result = harness.run(cases, timeout_s=60, rss_cap_mb=512)
    data = result.to_dict()
    print(data["counts"], f"{data['seconds']} s, peak RSS {data['peak_rss_mb']} MB")
    assert data["cases"] == MODELS + IMAGES
    assert data["failures"] == 0, data["examples"]
    for kind in ("tflite", "onnx", "image"):  # the mutants reach both outcomes, not only errors
        assert data["counts"][kind].get("error", 0) > 0, data["counts"]
    assert data["counts"]["tflite"].get("ok", 0) > 0 and data["counts"]["image"].get("ok", 0) > 0


def test_mutants_are_seeded_and_structural():
    bases = harness.default_bases()
    model = bases["tflite"][0].read_bytes()
    assert mutant("tflite", model, 7) == mutant("tflite", model, 7) != mutant("tflite", model, 8)
    assert len(tflite_fields(model)) > 100  # offsets, lengths, shapes, types, indices
    assert len(onnx_fields(bases["onnx"][0].read_bytes())) > 20
    image = bases["image"][0].read_bytes()
    assert len({mutant("image", image, s) for s in range(20)}) == 20


_FAKE_CHILD = textwrap.dedent("""
    # Speaks the worker's protocol; seed 1 dies by SIGSEGV, seed 2 hangs, seed 3 reports memory.
    import json, os, signal, sys, time
    for line in sys.stdin:
        case = json.loads(line)
        print(json.dumps({"start": case["id"]}), flush=True)
        if case["seed"] == 1:
            os.kill(os.getpid(), signal.SIGSEGV)
        if case["seed"] == 2:
            time.sleep(600)
        outcome = "memory" if case["seed"] == 3 else "ok"
        print(json.dumps({"id": case["id"], "outcome": outcome, "detail": "", "ms": 0, "rss_mb": 1}), flush=True)
""")


def test_harness_counts_crashes_hangs_and_memory_and_finishes_the_batch(tmp_path):
    child = tmp_path / "child.py"
    child.write_text(_FAKE_CHILD)
    cases = harness.make_cases("image", harness.default_bases()["image"][:1], 8, 0)
    result = harness.run(cases, timeout_s=3, python=[sys.executable, str(child)])
    counts = result.to_dict()["counts"]["image"]
    assert counts == {"ok": 5, "signal": 1, "hang": 1, "memory": 1}, counts
    assert result.children == 4  # a fresh child after each of the three, the rest still run
    assert {e["outcome"]: e["seed"] for e in result.examples} == {"signal": 1, "hang": 2, "memory": 3}
    assert "SIGSEGV" in next(e["detail"] for e in result.examples if e["outcome"] == "signal")


def test_a_large_parent_does_not_count_as_the_workers_memory():
    # Linux keeps ru_maxrss across fork/exec: from a pytest process holding TensorFlow (~1.7 GB)
    # every case used to count as over the cap and restart its worker.
    import numpy as np

    ballast = np.ones((640, 1024, 1024), np.uint8)  # 640 MB resident in this process
    bases = harness.default_bases()
    cases = harness.make_cases("image", bases["image"], 40, 0)
    data = harness.run(cases, timeout_s=60, rss_cap_mb=512).to_dict()
    assert ballast.sum() == ballast.size  # keeps it resident until the run is over
    assert data["failures"] == 0 and data["peak_rss_mb"] < 512, data
