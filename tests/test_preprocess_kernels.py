"""The compiled (numba) preprocessing kernels against the numpy ones they replace.

``preprocess.normalise`` runs the same steps with either kernel set (``preprocess.kernels``); the
compiled set is used whenever numba is installed. Each compiled kernel is checked against its numpy
twin on random and real inputs, then the whole path, both ways, on photo-like images.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")

from mnistkit.runtime import preprocess as P  # noqa: E402
from mnistkit.runtime.errors import ImageError, UsageError  # noqa: E402
from mnistkit.runtime.imageio import decode_gray  # noqa: E402
from mnistkit.runtime.preprocess_jit import KERNELS as JIT  # noqa: E402

NP = P.NUMPY_KERNELS
SAMPLES = Path(__file__).resolve().parents[1] / "runtime" / "assets" / "samples"


@pytest.mark.parametrize("seed", range(8))
def test_block_mean(seed):
    rng = np.random.default_rng(seed)
    h, w = (int(s) for s in rng.integers(1, 90, 2))
    f = int(rng.integers(1, 6))
    u8 = rng.integers(0, 256, (h, w), dtype=np.uint8)
    np.testing.assert_array_equal(JIT.block_mean(u8, f), NP.block_mean(u8, f))  # integer sums: exact
    fl = rng.random((h, w), dtype=np.float32)
    np.testing.assert_allclose(JIT.block_mean(fl, f), NP.block_mean(fl, f), rtol=0, atol=1e-6)
    part = u8[h // 3:, w // 4:]  # a region: a view with the parent's strides
    np.testing.assert_array_equal(JIT.block_mean(part, f), NP.block_mean(part, f))


@pytest.mark.parametrize("seed", range(8))
def test_smooth_dilate_bounds(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(1, 50, 2))
    a = rng.random(shape, dtype=np.float32)
    np.testing.assert_allclose(JIT.smooth3(a), NP.smooth3(a), rtol=0, atol=1e-6)
    mask = rng.random(shape) < rng.uniform(0.0, 0.3)
    np.testing.assert_array_equal(JIT.dilate3(mask), NP.dilate3(mask))
    assert JIT.bounds(mask) == NP.bounds(mask)
    assert JIT.bounds(np.zeros(shape, bool)) is None


@pytest.mark.parametrize("seed", range(16))
def test_digit_blobs(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(3, 60, 2))
    mask = rng.random(shape) < rng.uniform(0.02, 0.6)
    x = rng.random(shape, dtype=np.float32) * mask
    try:
        expected = NP.digit_blobs(x, mask)
    except ImageError as exc:
        with pytest.raises(ImageError, match=str(exc)):
            JIT.digit_blobs(x, mask)
        return
    np.testing.assert_array_equal(JIT.digit_blobs(x, mask), expected)


@pytest.mark.parametrize("mask, message", [
    (np.zeros((9, 9), bool), P.NO_BLOB),
    (np.eye(9, dtype=bool)[:, ::-1] & (np.arange(9) < 2)[:, None], P.ONLY_SPECKS),
])
def test_digit_blobs_refusals(mask, message):
    x = mask.astype(np.float32)
    for kernels in (NP, JIT):
        with pytest.raises(ImageError) as info:
            kernels.digit_blobs(x, mask)
        assert str(info.value) == message


@pytest.mark.parametrize("seed", range(8))
def test_background_surface(seed):
    rng = np.random.default_rng(seed)
    g = int(rng.integers(1, 9))
    cy = np.sort(rng.uniform(-0.5, 0.5, g)).astype(np.float32)
    cx = np.sort(rng.uniform(-0.5, 0.5, g)).astype(np.float32)
    ys, xs = np.linspace(-0.5, 0.5, 37, dtype=np.float32), np.linspace(-0.5, 0.5, 23, dtype=np.float32)
    values = (0.2 + 0.3 * rng.random(g * g)).astype(np.float32)
    values[rng.random(g * g) < 0.3] += 0.5  # inky cells
    coef, grid = JIT.fit_surface(values, cy, cx, 0.8)
    ref_coef, ref_grid = NP.fit_surface(values, cy, cx, 0.8)
    np.testing.assert_allclose(coef, ref_coef, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grid, ref_grid, rtol=0, atol=1e-5)
    b = P.Background(ref_coef, ref_grid, cy, cx)
    np.testing.assert_allclose(JIT.background_at(b, ys, xs), NP.background_at(b, ys, xs), rtol=0, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1), (3, 40), (40, 3), (17, 12), (90, 61), (160, 160)])
def test_fit_box_and_place(shape):
    b = np.random.default_rng(shape[0]).random(shape, dtype=np.float32)
    out = JIT.fit_box(b)
    np.testing.assert_allclose(out, NP.fit_box(b), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(JIT.place(out), NP.place(out))


@pytest.fixture(scope="module")
def photo_like(tmp_path_factory, mnist_dir) -> list[Path]:
    """200 photo-like images (fonts and MNIST ink, every format) plus the bundled samples."""
    from mnistkit.tools.scripts import make_samples

    if not make_samples.find_fonts():
        pytest.skip("no TrueType fonts on this machine")
    out = tmp_path_factory.mktemp("photo-like")
    assert make_samples.main([str(out), "--count", "200", "--seed", "7", "--data-dir", str(mnist_dir)]) == 0
    return sorted(out.iterdir()) + sorted(SAMPLES.iterdir())


def test_both_kernel_sets_give_the_same_answers(photo_like):
    from mnistkit.runtime import Classifier
    from mnistkit.runtime.cli import DEFAULT_MODEL

    outputs = {}
    for kernels in (NP, JIT):
        images, errors = [], []
        for path in photo_like:
            gray = decode_gray(path)
            try:
                images.append(P.normalise(gray, kernels))
                errors.append(None)
            except ImageError as exc:
                images.append(np.zeros((28, 28), np.float32))
                errors.append(str(exc))
        outputs[kernels.name] = np.stack(images), errors
    (a, errors_a), (b, errors_b) = outputs["numpy"], outputs["numba"]
    assert errors_a == errors_b
    assert errors_a.count(None) >= 0.95 * len(photo_like)
    assert np.abs(a - b).max() < 1e-4
    clf = Classifier.load(DEFAULT_MODEL)
    np.testing.assert_array_equal(clf.predict_proba(a).argmax(1), clf.predict_proba(b).argmax(1))


def _kernel_name(env: dict[str, str]) -> subprocess.CompletedProcess:
    code = "from mnistkit.runtime.preprocess import kernels; print(kernels().name)"
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def test_kernels_follow_the_environment():
    assert _kernel_name({"MNISTKIT_PREPROCESS": "auto"}).stdout.strip() == "numba"
    assert _kernel_name({"MNISTKIT_PREPROCESS": "numpy"}).stdout.strip() == "numpy"
    assert _kernel_name({"MNISTKIT_PREPROCESS": "NUMBA"}).stdout.strip() == "numba"
    bad = _kernel_name({"MNISTKIT_PREPROCESS": "fortran"})
    assert bad.returncode != 0 and "is not auto, numpy or numba" in bad.stderr


def test_kernels_refuse_a_bad_setting(monkeypatch, tmp_path):
    from PIL import Image

    transparent = tmp_path / "t.png"
    Image.new("RGBA", (9, 9)).save(transparent)  # decoding it composites with the kernels
    monkeypatch.setenv("MNISTKIT_PREPROCESS", "gpu")
    P.kernels.cache_clear()
    try:
        with pytest.raises(UsageError, match="MNISTKIT_PREPROCESS='gpu'"):
            P.kernels()
        with pytest.raises(UsageError, match="MNISTKIT_PREPROCESS='gpu'"):  # not "cannot be decoded"
            decode_gray(transparent)
    finally:
        monkeypatch.delenv("MNISTKIT_PREPROCESS")
        P.kernels.cache_clear()


@pytest.mark.parametrize("seed", range(6))
def test_gray_alpha(seed):
    rng = np.random.default_rng(seed)
    h, w = (int(s) for s in rng.integers(1, 70, 2))
    la = rng.integers(0, 256, (h, w, 2), dtype=np.uint8)
    if seed % 2:  # light ink that only shows on black: the other branch of the rule
        la[..., 0] = 255
    la.setflags(write=False)  # as decoded
    np.testing.assert_array_equal(JIT.gray_alpha(la), NP.gray_alpha(la))  # same float32 operations


def test_decoded_transparent_png_uses_the_kernels(tmp_path):
    from PIL import Image

    rgba = np.zeros((40, 30, 4), np.uint8)
    rgba[8:32, 12:18] = (20, 20, 20, 255)  # an opaque dark "1" on a transparent page
    path = tmp_path / "one.png"
    Image.fromarray(rgba, "RGBA").save(path)
    gray = decode_gray(path)
    assert gray.dtype == np.float32 and gray[0, 0] == 1.0 and gray[20, 15] < 0.1  # on white
    np.testing.assert_array_equal(gray, NP.gray_alpha(np.asarray(Image.open(path).convert("LA"))))
