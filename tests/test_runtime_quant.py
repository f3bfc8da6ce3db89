"""Quantizer / Dequantizer / PixelConverter agree with the reference affine formulas (incl. saturation)."""

from __future__ import annotations

import numpy as np
import pytest

from mnistkit.runtime.quant import Dequantizer, PixelConverter, Quantizer


@pytest.mark.parametrize("dtype, scale, zero", [(np.int8, 1 / 255, -128), (np.uint8, 1 / 255, 0),
                                                (np.int8, 0.0123, 7), (np.int16, 1 / 32768, 0)])
def test_quantizer_matches_reference(dtype, scale, zero):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.random(5000, np.float32), np.float32([-3, 0, 0.5, 1, 7, 1e9])])
    x = x.reshape(-1, 1, 1)
    info = np.iinfo(dtype)
    ref = np.clip(np.rint(x / np.float32(scale) + zero), info.min, info.max).astype(dtype)
    q = Quantizer(scale, zero, dtype)
    got = q(x)
    assert got.dtype == dtype
    assert np.abs(got.astype(np.int32) - ref.astype(np.int32)).max() <= 1  # x*(1/s) vs x/s
    assert (got == ref).mean() > 0.999
    assert got[-1].item() == info.max and got[-6].item() == info.min  # saturates, never wraps
    assert np.array_equal(q(x[:3]), ref[:3])  # the scratch buffer follows the batch size


@pytest.mark.parametrize("dtype, zero", [(np.int8, -128), (np.int8, 3), (np.uint8, 0), (np.int16, 0)])
def test_dequantizer_matches_reference(dtype, zero):
    info = np.iinfo(dtype)
    q = np.arange(max(info.min, -1000), min(info.max, 1000) + 1).astype(dtype).reshape(-1, 1)
    ref = (q.astype(np.float32) - np.float32(zero)) * np.float32(0.00390625)
    got = Dequantizer(0.00390625, zero, dtype)(q)
    assert got.dtype == np.float32 and got.shape == q.shape and np.array_equal(got, ref)


@pytest.mark.parametrize("dtype, scale, zero", [(np.int8, 1 / 255, -128), (np.int8, 0.0123, 7),
                                                (np.uint8, 1 / 255, 0), (np.int16, 1 / 32768, 0), (None, 0, 0)])
def test_pixel_converter_equals_the_float_path(dtype, scale, zero):
    pixels = np.arange(256, dtype=np.uint8).repeat(4).reshape(-1, 2, 2)
    floats = pixels.astype(np.float32) / np.float32(255.0)  # models.data.to_float
    quantizer = Quantizer(scale, zero, dtype) if dtype else None
    expected = quantizer(floats) if quantizer else floats
    got = PixelConverter(quantizer)(pixels)
    assert got.dtype == expected.dtype and got.shape == pixels.shape
    assert np.array_equal(got, expected)
