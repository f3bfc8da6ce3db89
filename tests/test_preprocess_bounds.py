"""preprocess: bounded memory on extreme aspect ratios, and the block mean's edge semantics."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from mnistkit.runtime.errors import ImageError
from mnistkit.runtime.preprocess import _block_mean, prepare


def padded_block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Reference: pad with edge values to a multiple of f, then average each f x f block."""
    h, w = a.shape
    p = np.pad(a.astype(np.float64), ((0, -h % f), (0, -w % f)), mode="edge")
    return p.reshape(p.shape[0] // f, f, p.shape[1] // f, f).mean(axis=(1, 3))


@pytest.mark.parametrize("shape, f", [((1, 2003), 13), ((2003, 1), 13), ((7, 5000), 32), ((45, 61), 4),
                                      ((64, 64), 2), ((3, 3), 5)])
def test_block_mean_matches_edge_padding(shape, f):
    a = np.random.default_rng(0).random(shape, dtype=np.float32)
    np.testing.assert_allclose(_block_mean(a, f), padded_block_mean(a, f), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape, f", [((45, 61), 4), ((251, 253), 2), ((901, 700), 6), ((1, 2003), 13), ((70, 33), 16)])
def test_block_mean_of_uint8_is_the_block_mean_of_the_scaled_image(shape, f):
    """decode_gray keeps 8-bit images as uint8; the block mean scales them by 1/255 after summing."""
    a = np.random.default_rng(2).integers(0, 256, shape, dtype=np.uint8)
    out = _block_mean(a, f)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, padded_block_mean(a / 255.0, f), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 200_000), (300_000, 1), (3, 120_000)])
def test_extreme_aspect_ratios_stay_small(shape):
    """Issue 15 measured 1 GB (1 x 200,000) and 4.3 GB (300,000 x 1) here; now a few MB."""
    rng = np.random.default_rng(1)
    image = np.full(shape, 0.9, np.float32)
    image.reshape(-1)[rng.integers(0, image.size, 50)] = 0.1  # a few dark specks, no digit
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match="no digit"):
            prepare(image)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * image.nbytes + 8 * 2**20, peak
