"""preprocess and imageio fast paths against slow, obvious references.

The photo path was sped up (issue 12) by run-length blob labelling, hat-function interpolation
and uint8 decoding. Each is checked here against a straightforward implementation on many random
inputs, and the whole path against the float pipeline on the bundled photos.
"""

from __future__ import annotations

import io
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnistkit.runtime.imageio import array_to_gray, decode_gray, read_gray
from mnistkit.runtime.preprocess import _interp_matrix, _runs, normalise, prepare, prepare_gray

SAMPLES = Path(__file__).resolve().parents[1] / "runtime" / "assets" / "samples"


def flood_fill_labels(mask: np.ndarray) -> np.ndarray:
    """Reference 8-connected labelling: breadth-first flood fill, blobs numbered in raster order."""
    labels = np.full(mask.shape, -1)
    h, w = mask.shape
    n = 0
    for y in range(h):
        for x in range(w):
            if not mask[y, x] or labels[y, x] >= 0:
                continue
            labels[y, x] = n
            todo = deque([(y, x)])
            while todo:
                cy, cx = todo.popleft()
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = cy + dy, cx + dx
                        if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and labels[ny, nx] < 0:
                            labels[ny, nx] = n
                            todo.append((ny, nx))
            n += 1
    return labels


@pytest.mark.parametrize("seed", range(12))
def test_run_labelling_matches_flood_fill(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(1, 40, 2))
    mask = rng.random(shape) < rng.uniform(0.05, 0.7)
    row, start, end, blob = _runs(mask)
    labels = np.full(shape, -1)
    for r, s, e, b in zip(row, start, end, blob):
        labels[r, s:e] = b
    np.testing.assert_array_equal(labels, flood_fill_labels(mask))


def test_run_labelling_of_an_empty_mask():
    row, start, end, blob = _runs(np.zeros((5, 7), bool))
    assert row.size == start.size == end.size == blob.size == 0


@pytest.mark.parametrize("n, m", [(2, 9), (8, 160), (5, 3), (20, 28)])
def test_interpolation_matrix_matches_numpy_interp(n, m):
    """Linear interpolation between evenly spaced centres, constant beyond the ends."""
    centres = ((np.arange(n) + 0.5) / n - 0.5).astype(np.float32)
    pos = np.linspace(-0.7, 0.7, m).astype(np.float32)
    weights = _interp_matrix(pos, centres)
    reference = np.stack([np.interp(pos, centres, np.eye(n)[j]) for j in range(n)], axis=1)
    np.testing.assert_allclose(weights, reference, atol=2e-6)


@pytest.mark.parametrize("light_ink", [False, True])
def test_alpha_compositing_of_decoded_files_matches_the_array_rule(light_ink):
    rng = np.random.default_rng(3)
    gray = np.full((40, 50), 255 if light_ink else 0, np.uint8)
    alpha = np.zeros((40, 50), np.uint8)
    alpha[10:30, 20:30] = rng.integers(128, 256, (20, 10))  # a stroke on a transparent sheet
    la = np.stack([gray, alpha], axis=-1)
    buf = io.BytesIO()
    Image.fromarray(la, "LA").save(buf, "PNG")
    decoded = decode_gray(buf.getvalue())
    assert decoded.dtype == np.float32
    np.testing.assert_allclose(decoded, array_to_gray(la), atol=1e-6)
    # Light ink only shows on black; dark ink on white.
    assert decoded[0, 0] == (0.0 if light_ink else 1.0)


def test_eight_bit_files_decode_to_uint8_and_read_gray_scales_them():
    a = np.random.default_rng(4).integers(0, 256, (30, 20), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    raw = decode_gray(buf.getvalue())
    assert raw.dtype == np.uint8
    np.testing.assert_array_equal(raw, a)
    np.testing.assert_array_equal(read_gray(buf.getvalue()), a.astype(np.float32) / np.float32(255))


def test_uint8_and_float_inputs_give_the_same_digit_on_the_bundled_photos():
    """prepare() now reduces 8-bit photos before scaling them; the result must not move."""
    files = sorted(p for p in SAMPLES.iterdir() if p.suffix in {".png", ".jpg", ".gif"})
    assert len(files) >= 10
    uint8_seen = 0
    for path in files:
        raw = decode_gray(path)
        uint8_seen += raw.dtype == np.uint8
        fast, slow = prepare_gray(raw), normalise(read_gray(path))
        np.testing.assert_allclose(fast, slow, atol=1e-4, err_msg=str(path))
        np.testing.assert_array_equal(prepare(path), fast)
    assert uint8_seen >= len(files) // 2
