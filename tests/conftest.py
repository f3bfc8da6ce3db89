"""Shared pytest setup: point the MNIST loader at the offline copy beside the project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"

if "MNISTKIT_DATA" not in os.environ and SHARED_MNIST.is_dir():
    os.environ["MNISTKIT_DATA"] = str(SHARED_MNIST)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite loads hundreds of unverified test models; a child-process test run of each (the
# runtime's default for unverifiable files, runtime/probe.py) would add minutes. Tests of the probe
# itself pass probe=True.
os.environ.setdefault("MNISTKIT_PROBE", "0")


@pytest.fixture(scope="session", autouse=True)
def preprocessing_kernels():
    """Load the preprocessing kernels once, up front: with numba installed (the dev extra installs
    it) the first load after a change compiles them (~15 s), which would otherwise land in whichever
    test first classifies a photo, maybe inside a child process with a timeout. Children load the cache."""
    from mnistkit.runtime.preprocess import kernels

    return kernels()


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder of the four canonical MNIST IDX files (tests never download)."""
    folder = Path(os.environ.get("MNISTKIT_DATA", SHARED_MNIST))
    if not folder.is_dir():
        pytest.skip(f"MNIST files not found at {folder}; set MNISTKIT_DATA")
    return folder


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """The verified MNIST split, loaded once per session."""
    from mnistkit.models.data import load_mnist

    return load_mnist(mnist_dir)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow (training, conversion, parity)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def zoo_sources(tmp_path_factory, mnist):
    """Zoo models trained briefly (seeded) on first use, shared by the slow export tests: name -> .keras."""
    from tests.test_export_matrix import _Sources

    return _Sources(tmp_path_factory.mktemp("zoo-sources"), mnist)
