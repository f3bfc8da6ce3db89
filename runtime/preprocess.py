"""Turn a real digit image into an MNIST-style input (white digit on black, 20x20 box, 28x28 frame).

MNIST digits are white on black, scaled to fit a 20x20 box with their aspect ratio kept, and centred
by their centre of mass in a 28x28 frame. :func:`prepare` does the same to a photo or scan:

1. decode to grayscale (``imageio.decode_gray``; alpha is composited on white);
2. on a copy of at most 160 pixels a side: find the polarity (a light background is inverted),
   fit the background (a robust quadratic trend plus a correction grid, from cells without ink)
   and subtract it, which removes uneven lighting and paper tone;
3. threshold above the noise floor, label connected blobs and keep the main one plus the pieces
   near it, dropping specks, dirt and far-away marks;
4. in the digit's region (at most 160 pixels a side): subtract the background, binarise softly
   at 35% of the ink level (never below 3x the noise), crop to the digit;
5. fit into 20x20 keeping the aspect ratio (area averaging), scale the peak to 1 and place it in
   28x28 so its centre of mass lands on pixel (14, 14).

numpy only: Pillow is needed only to decode files and bytes. The pixel loops (block means,
smoothing, blob labelling, the background surface, resizing) are :class:`Kernels`; with numba
installed (``mnistkit[fast]``) compiled twins from ``preprocess_jit`` replace the numpy ones, for
the same answers in about half the time. Arrays that already look like MNIST
(see :func:`is_mnist_style`) are only scaled to [0, 1]. The constants below were tuned on a
photo-like set from ``tools/scripts/make_samples.py`` (seed 1); ``tools/scripts/measure_photos.py`` measures them.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mnistkit.runtime.errors import ImageError, UsageError
from mnistkit.runtime.imageio import ImageInput, array_to_gray, decode_gray, describe, unit_float

SIDE = 28
"""Side of an MNIST image."""
BOX = 20
"""Side of the box the digit is fitted into."""
ANALYSIS_SIDE = 160
"""Longer side of the small copy used to find the digit (polarity, background, blobs)."""
REGION_SIDE = 160
"""Longer side the digit's region is reduced to (at most) before it is binarised and cropped."""
MIN_CONTRAST = 0.08
"""Smallest (smoothed) brightness range, in [0, 1], that can hold a digit."""
INK_THRESHOLD = 0.35
"""Binarisation threshold as a fraction of the ink level (99th percentile of the digit's region)."""
NO_BLOB = "no digit found; pass a clearer picture of a digit"
ONLY_SPECKS = "no digit found: only specks; pass a clearer picture of a digit"


def is_mnist_style(image: np.ndarray) -> bool:
    """Tell whether ``image`` already looks like an MNIST input and needs no preprocessing.

    That is: a 28x28 array (any dtype :func:`~mnistkit.runtime.imageio.array_to_gray` accepts), dark
    background (mean of the outer 2-pixel ring < 0.15, median < 0.1), some ink (maximum > 0.3) and a
    centre of mass within 2.5 pixels of (14, 14). All 70,000 MNIST digits pass.

    Args:
        image: a numpy array.

    Returns:
        True if :func:`prepare` would only scale it to [0, 1].
    """
    if not isinstance(image, np.ndarray) or image.shape[:2] != (SIDE, SIDE):
        return False
    try:
        g = array_to_gray(image)
    except ImageError:
        return False
    ring = np.concatenate([g[:2].ravel(), g[-2:].ravel(), g[2:-2, :2].ravel(), g[2:-2, -2:].ravel()])
    if ring.mean() >= 0.15 or _median(g) >= 0.1 or g.max() <= 0.3:
        return False
    cy, cx = _centre_of_mass(g)
    return math.hypot(cy - SIDE // 2, cx - SIDE // 2) <= 2.5


def prepare(image: ImageInput) -> np.ndarray:
    """Preprocess one digit image the way MNIST was made.

    Args:
        image: a path (str or PathLike), encoded bytes (PNG, JPEG, BMP, GIF, ...), a PIL image or a
            numpy array (H, W) / (H, W, 3) / (H, W, 4) of uint8, uint16 or float pixels.

    Returns:
        float32 array (28, 28) in [0, 1]: white digit on black, fitted in 20x20, centred by mass.

    Raises:
        ImageError: the image cannot be read, or no digit can be found in it.
    """
    gray = decode_gray(image)
    try:
        return prepare_gray(gray)
    except ImageError as exc:
        raise ImageError(f"{describe(image)}: {exc}") from None


def prepare_gray(gray: np.ndarray) -> np.ndarray:
    """:func:`prepare` after decoding: ``gray`` as :func:`~mnistkit.runtime.imageio.decode_gray` gives it.

    Raises:
        ImageError: no digit can be found in it.
    """
    if gray.shape == (SIDE, SIDE):
        gray = unit_float(gray)
        if is_mnist_style(gray):
            return gray
    return normalise(gray)


def normalise(gray: np.ndarray, ops: Kernels | None = None) -> np.ndarray:
    """Preprocess a grayscale image (H, W) into an MNIST-style (28, 28) array.

    ``gray`` is float32 in [0, 1] or uint8 (0-255), as :func:`~mnistkit.runtime.imageio.decode_gray`
    gives it. ``ops``: the pixel loops to use, :func:`kernels` unless given.

    Raises:
        ImageError: the image is blank (one flat colour) or holds no digit-like blob.
    """
    ops = ops or kernels()
    height, width = gray.shape
    # 1. Find the digit on a small copy: polarity, background surface, noise floor, blobs.
    f = max(1, math.ceil(max(height, width) / ANALYSIS_SIDE))
    small = ops.block_mean(gray, f)
    smooth = ops.smooth3(small)
    lo, hi, med = float(smooth.min()), float(smooth.max()), _median(small[::2, ::2])
    if hi - lo < MIN_CONTRAST:
        raise ImageError(
            "no digit found: the image is blank (one flat colour); "
            "pass a picture of one dark digit on light paper or a light digit on dark"
        )
    light = med - lo > hi - med
    ink = 1.0 - smooth if light else smooth
    ys, xs = _centres(0, small.shape[0], f, height), _centres(0, small.shape[1], f, width)
    background = _fit_background(ink, ys, xs, hi - lo, ops)
    bg = ops.background_at(background, ys, xs)
    x = ink - bg
    sample = x[::2, ::2]  # medians of a quarter of the pixels are plenty, and 4x cheaper
    base = _median(sample)
    sigma = 1.4826 * _median(np.abs(sample - base))
    peak = float(x.max()) - base
    if peak < MIN_CONTRAST / 2 or peak < 3 * sigma:
        raise ImageError("no digit found: only noise or lighting changes; pass a clearer picture of a digit")
    keep = ops.digit_blobs(x, x > base + max(4.0 * sigma, 0.2 * peak))
    top, bottom, left, right = ops.bounds(keep)
    r0, r1 = max(0, (top - 1) * f), min(height, (bottom + 1) * f)
    c0, c1 = max(0, (left - 1) * f), min(width, (right + 1) * f)

    # 2. The digit's region at up to REGION_SIDE pixels: subtract the background, keep the blobs.
    g = max(1, math.ceil(max(r1 - r0, c1 - c0) / REGION_SIDE))
    near = ops.dilate3(keep)  # the kept blobs plus one pixel
    if g == f:  # the region is a block-aligned piece of the small copy: reuse it and its background
        rs, cs = slice(r0 // f, -(-r1 // f)), slice(c0 // f, -(-c1 // f))
        region, v, near = small[rs, cs], bg[rs, cs].copy(), near[rs, cs]
    else:
        region = ops.block_mean(gray[r0:r1, c0:c1], g)
        py, px = _centres(r0, region.shape[0], g), _centres(c0, region.shape[1], g)
        v = ops.background_at(background, py / np.float32(height) - 0.5, px / np.float32(width) - 0.5)
        rows_near = np.minimum(py.astype(np.intp) // f, near.shape[0] - 1)
        cols_near = np.minimum(px.astype(np.intp) // f, near.shape[1] - 1)
        near = near.take(rows_near, axis=0).take(cols_near, axis=1)  # looked up at region pixels
    v += np.float32(base)
    v = np.subtract(np.float32(1.0) - region, v, out=v) if light else np.subtract(region, v, out=v)
    outside = v[~near][::4]
    noise = 1.4826 * _median(np.abs(outside - _median(outside))) if outside.size >= 16 else 0.0
    v *= near

    # 3. Binarise softly at 35% of the ink level (above the noise), crop to the digit.
    values = v[v > 0]
    if values.size == 0:
        raise ImageError("no digit found after removing the background; pass a clearer picture of a digit")
    q = int(0.99 * (values.size - 1))
    level = float(np.partition(values, q)[q])
    t = max(INK_THRESHOLD * level, 3.0 * noise)
    soft = 0.15 * level
    box = ops.bounds(v > np.float32(t - soft))
    if box is None or max(box[1] - box[0], box[3] - box[2]) < 3:
        raise ImageError("no digit found, only a speck; pass a clearer picture of a digit")
    crop = v[box[0] : box[1], box[2] : box[3]]
    b = _clip01((crop - np.float32(t - soft)) * np.float32(0.5 / soft))
    # 4. Fit into 20x20, centre by mass in 28x28.
    return ops.place(ops.fit_box(b))


# --- steps ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Background:
    """A smooth background: a quadratic trend plus a bilinear correction grid (both normalised)."""

    coef: np.ndarray  # 6 quadratic coefficients over normalised coordinates (-0.5..0.5)
    grid: np.ndarray  # (g, g) residuals of the background cells, 0 where a cell holds ink
    cy: np.ndarray  # normalised coordinates of the cell centres
    cx: np.ndarray

    def at(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Evaluate on the grid of normalised coordinates ``ys`` x ``xs``.

        The quadratic trend is ``[1, y, y^2] @ C @ [1, x, x^2]^T`` and the grid ``Iy @ G @ Ix^T``
        (interpolation matrices), so both are one product of two small matrices with a
        block-diagonal core: two matrix multiplications instead of a dozen whole-image passes.
        """
        c, g = self.coef, self.grid
        n = g.shape[0]
        core = np.zeros((3 + n, 3 + n), np.float32)
        core[0, 0], core[1, 0], core[0, 1], core[2, 0], core[1, 1], core[0, 2] = c
        core[3:, 3:] = g
        left = np.empty((len(ys), 3 + n), np.float32)
        left[:, 0], left[:, 1], left[:, 2] = 1.0, ys, ys * ys
        left[:, 3:] = _interp_matrix(ys, self.cy)
        right = np.empty((3 + n, len(xs)), np.float32)
        right[0], right[1], right[2] = 1.0, xs, xs * xs
        right[3:] = _interp_matrix(xs, self.cx).T
        return (left @ core) @ right


def _fit_background(ink: np.ndarray, ys: np.ndarray, xs: np.ndarray, contrast: float, ops: Kernels) -> Background:
    """Fit the background of ``ink`` (ink bright) from low percentiles of up to 8x8 cells.

    A quadratic trend is fitted robustly to the cells that hold no ink (starting from the darker
    half, then every cell less than 0.35 * ``contrast`` above the trend); the remaining residuals
    of those cells form a correction grid, so lighting that is not quadratic (a clipped highlight,
    a dark corner) is followed too.

    Args:
        ink: the small image, ink bright.
        ys, xs: normalised (-0.5..0.5) coordinates of its row and column centres.
        contrast: the image's brightness range.
        ops: the kernels (the surface fit is one).
    """
    h, w = ink.shape
    g = min(max(min(h, w) // 8, 1), 8)  # cells of at least 8 pixels
    ch, cw = h // g, w // g
    cells = ink[: g * ch, : g * cw].reshape(g, ch, g, cw).transpose(0, 2, 1, 3).reshape(g * g, -1)
    q = cells.shape[1] // 4
    values = np.partition(cells, q, axis=1)[:, q]  # 25th percentile: a cell must be 3/4 ink to look inky
    cy = np.add.reduce(ys[: g * ch].reshape(g, ch), axis=1) / np.float32(ch)
    cx = np.add.reduce(xs[: g * cw].reshape(g, cw), axis=1) / np.float32(cw)
    coef, grid = ops.fit_surface(values, cy, cx, contrast)
    return Background(coef, grid, cy, cx)


def _fit_surface(values: np.ndarray, cy: np.ndarray, cx: np.ndarray, contrast: float) -> tuple[np.ndarray, np.ndarray]:
    """Quadratic trend coefficients (6) and correction grid (g, g) from the cells' 25th percentiles."""
    g = len(cy)
    if g < 4:  # too few cells for a surface: a flat background at the median
        coef = np.array([_median(values), 0, 0, 0, 0, 0], np.float32)
        return coef, np.zeros((g, g), np.float32)
    design = np.empty((g, g, 6), np.float64)  # 1, y, x, y^2, yx, x^2 at every cell centre
    y, x = cy.astype(np.float64)[:, None], cx.astype(np.float64)[None, :]
    design[..., 0], design[..., 1], design[..., 2] = 1.0, y, x
    design[..., 3], design[..., 4], design[..., 5] = y * y, y * x, x * x
    design = design.reshape(g * g, 6)
    use = values <= _median(values)  # start from the half of the cells with the least ink
    ridge = 1e-6 * np.eye(6)
    for _ in range(4):
        d = design[use]
        coef = np.linalg.solve(d.T @ d + ridge, d.T @ values[use])  # least squares
        resid = values - design @ coef
        new = resid < 0.35 * contrast
        if np.count_nonzero(new) < 8 or (new == use).all():
            break
        use = new
    grid = np.where(use, resid, 0.0).reshape(g, g)
    return coef.astype(np.float32), grid.astype(np.float32)


def _interp_matrix(pos: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Matrix (len(pos), len(centres)) of linear-interpolation weights, constant beyond the ends.

    ``centres`` are evenly spaced (cell or pixel centres), so each weight is a hat function of the
    distance: ``max(0, 1 - |p - c| / spacing)`` with ``p`` clamped to the ends.
    """
    n = len(centres)
    if n == 1:
        return np.ones((len(pos), 1), np.float32)
    p = np.minimum(np.maximum(pos, centres[0]), centres[-1]).astype(np.float32)
    step = np.float32((centres[-1] - centres[0]) / (n - 1))
    dist = np.abs(p[:, None] - centres[None, :].astype(np.float32))
    return np.maximum(np.float32(1.0) - dist / step, np.float32(0.0))


def _centres(start: int, n: int, f: int, side: int | None = None) -> np.ndarray:
    """Coordinates of the centres of ``n`` blocks of ``f`` pixels from pixel ``start``, float32.

    In pixels of the full image, or normalised to -0.5..0.5 when its ``side`` is given.
    """
    c = (np.arange(n, dtype=np.float32) + np.float32(0.5)) * np.float32(f) + np.float32(start)
    return c if side is None else c / np.float32(side) - np.float32(0.5)


def _digit_blobs(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Keep the heaviest blob of ``mask`` (blobs touching the border count 0.3x) and its pieces.

    Pieces are blobs with >= 10% of its mass within a quarter of its size, or >= 2% of its mass
    touching its bounding box (a stroke broken by thresholding). Returns a boolean mask.
    """
    row, start, end, blob = _runs(mask)
    if row.size == 0:
        raise ImageError(NO_BLOB)
    n = int(blob.max()) + 1
    length = end - start
    # The mask's pixels, in row-major order, are the runs' pixels one run after the other.
    run_mass = np.add.reduceat(x[mask], np.cumsum(length) - length, dtype=np.float64)
    mass = np.bincount(blob, weights=run_mass, minlength=n)
    order = np.argsort(blob, kind="stable")  # runs grouped by blob, rows increasing within each
    firsts = np.searchsorted(blob[order], np.arange(n))
    top, bottom = np.minimum.reduceat(row[order], firsts), np.maximum.reduceat(row[order], firsts)
    left, right = np.minimum.reduceat(start[order], firsts), np.maximum.reduceat(end[order] - 1, firsts)
    h, w = x.shape
    edge = (top == 0) | (left == 0) | (bottom == h - 1) | (right == w - 1)
    main = int(np.argmax(np.where(edge, 0.3, 1.0) * mass))  # lighting leftovers hug the border
    margin = 0.25 * max(bottom[main] - top[main] + 1, right[main] - left[main] + 1) + 1

    def overlaps(m: float) -> np.ndarray:
        return (
            (bottom >= top[main] - m) & (top <= bottom[main] + m)
            & (right >= left[main] - m) & (left <= right[main] + m)
        )

    near = (overlaps(margin) & (mass >= 0.1 * mass[main])) | (overlaps(1) & (mass >= 0.02 * mass[main]))
    near[main] = True
    keep = np.zeros(mask.shape, bool)
    keep[mask] = np.repeat(near[blob], length)
    if np.count_nonzero(keep) < 3:
        raise ImageError(ONLY_SPECKS)
    return keep


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Row runs of a 2-D boolean mask and the 8-connected blob each belongs to.

    Returns:
        (row, start, end, blob): one entry per run in row-major order; ``end`` is exclusive and
        ``blob`` numbers the blobs 0..n-1 in the order of their first run.
    """
    h, w = mask.shape
    span = w + 1
    # The rows one after the other, each followed by a False, behind one leading False: every
    # change of value is a run's start or (exclusive) end, alternately.
    flat = np.zeros(h * span + 1, bool)
    flat[1:].reshape(h, span)[:, :w] = mask
    edges = np.flatnonzero(flat[1:] != flat[:-1])
    starts, ends = edges[0::2], edges[1::2]
    row = starts // span
    start, end = starts - row * span, ends - row * span
    n = len(row)
    if n == 0:
        return row, start, end, np.zeros(0, np.intp)
    # Runs of the row above that touch run j (8-connected): end_k >= start_j and start_k <= end_j.
    # ``starts``/``ends`` are sorted flat positions, so both bounds are one searchsorted each.
    lo = np.searchsorted(ends, starts - span, side="left")
    hi = np.searchsorted(starts, ends - span, side="right")
    lo = np.maximum(lo, np.searchsorted(row, row - 1, side="left"))  # stay within the row above
    count = np.maximum(hi - lo, 0)
    blob = np.arange(n)
    if count.any():
        a = np.repeat(np.arange(n), count)
        b = np.repeat(lo - np.cumsum(count) + count, count) + np.arange(int(count.sum()))
        blob = _components(n, a, b)
    # Each blob is labelled with its first run; number those 0..n-1 in order.
    return row, start, end, (np.cumsum(blob == np.arange(n)) - 1)[blob]


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Label each of ``n`` nodes with the smallest node of its connected component (edges a-b).

    Vectorised min-label hooking with pointer jumping: a few numpy passes instead of a Python
    union-find loop over every run.
    """
    label = np.arange(n)
    while True:
        la, lb = label[a], label[b]
        low = np.minimum(la, lb)
        new = label.copy()
        np.minimum.at(new, la, low)  # hook each root onto the smallest label it touches
        np.minimum.at(new, lb, low)
        while True:  # pointer jumping until every node points at its root (two jumps per check)
            nxt = new[new]
            nxt = nxt[nxt]
            if (nxt == new).all():
                break
            new = nxt
        if (new == label).all():
            return label
        label = new


def _bounds(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), ends exclusive, of the True pixels of ``mask`` (None when none)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _fit_box(b: np.ndarray) -> np.ndarray:
    """Resize ``b`` so its longer side is BOX pixels, keeping the aspect ratio; peak scaled to 1.

    Shrinking averages over each output pixel's area (antialiased, like Pillow's BOX filter);
    enlarging interpolates bilinearly. numpy only, so arrays never need Pillow.
    """
    h, w = b.shape
    scale = BOX / max(h, w)
    out = _resize_matrix(h, max(1, round(h * scale))) @ b @ _resize_matrix(w, max(1, round(w * scale))).T
    peak = float(out.max())
    if peak > 0:
        out *= np.float32(1.0 / peak)
        _clip01(out)
    return out


@lru_cache(maxsize=512)
def _resize_matrix(n: int, m: int) -> np.ndarray:
    """(m, n) matrix resampling a length-n signal to length m (area average, or linear when m > n).

    Cached (read-only): crops come in a few hundred sizes, and building one costs more than using it.
    """
    if m > n:
        pos = (np.arange(m, dtype=np.float32) + 0.5) * (n / m) - 0.5
        out = _interp_matrix(pos, np.arange(n, dtype=np.float32))
    else:
        s = n / m
        lo = np.arange(m)[:, None] * s
        j = np.arange(n)[None, :]
        overlap = np.minimum(j + 1, lo + s) - np.maximum(j, lo)
        out = (np.maximum(overlap, 0.0) / s).astype(np.float32)
    out.setflags(write=False)
    return out


def _place(d: np.ndarray) -> np.ndarray:
    """Paste ``d`` in a 28x28 frame so that its centre of mass lands on pixel (14, 14)."""
    h, w = d.shape
    cy, cx = _centre_of_mass(d)
    top = min(max(round(SIDE // 2 - cy), 0), SIDE - h)
    left = min(max(round(SIDE // 2 - cx), 0), SIDE - w)
    out = np.zeros((SIDE, SIDE), np.float32)
    out[top : top + h, left : left + w] = d
    return out


# --- numpy helpers -------------------------------------------------------------------------------


def _clip01(a: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] in place (np.clip's Python wrapper costs several microseconds a call)."""
    np.minimum(a, 1.0, out=a)
    return np.maximum(a, 0.0, out=a)


def _median(a: np.ndarray) -> float:
    """Median of all values (the upper one for an even count); np.median would import numpy.ma."""
    flat = a.flatten()  # a copy: partitioned in place without np.partition's Python wrapper
    k = flat.size // 2
    flat.partition(k)
    return float(flat[k])


def _centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    total = float(a.sum())
    if total <= 0:
        return (a.shape[0] - 1) / 2, (a.shape[1] - 1) / 2
    return (
        float(a.sum(axis=1) @ np.arange(a.shape[0])) / total,
        float(a.sum(axis=0) @ np.arange(a.shape[1])) / total,
    )


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Average over f x f blocks; a ragged last block is padded by repeating the last row/column.

    ``a`` is float32 in [0, 1] or uint8 (0-255, scaled to [0, 1] here, after the sums: cheaper
    than converting the whole decoded image first). Sums one axis at a time with strided slices
    (much faster than ``reshape(...).mean()``) and adds the padding as a weight on the last
    row/column instead of materialising it, so memory stays at the input plus (H/f, W) even for
    extreme aspect ratios (a 1 x 200,000 array once needed 1 GB).
    """
    if f == 1:
        return unit_float(a)
    scale = np.float32(1.0 / (f * f) / (255.0 if a.dtype == np.uint8 else 1.0))
    return _block_sum_rows(_block_sum_rows(a, f).T, f).T * scale


def _block_sum_rows(a: np.ndarray, f: int) -> np.ndarray:
    """Sums of blocks of ``f`` rows, float32 (ceil(H/f), W); a ragged last block repeats its last row."""
    h = a.shape[0]
    full, rest = divmod(h, f)
    out = np.empty((full + (rest > 0), a.shape[1]), np.float32)
    body = out[:full]
    np.copyto(body, a[0 : full * f : f], casting="unsafe")
    for i in range(1, f):
        body += a[i : full * f : f]
    if rest:
        np.sum(a[full * f :], axis=0, dtype=np.float32, out=out[-1])
        out[-1] += np.float32(f - rest) * a[-1]
    return out


def _smooth3(a: np.ndarray) -> np.ndarray:
    """Mean over each pixel's 3x3 neighbourhood (edges replicated)."""
    h, w = a.shape
    p = np.empty((h + 2, w + 2), np.float32)  # edge padding by hand: np.pad costs ~20 us a call
    p[1:-1, 1:-1] = a
    p[0, 1:-1], p[-1, 1:-1] = a[0], a[-1]
    p[:, 0], p[:, -1] = p[:, 1], p[:, -2]
    rows = p[:-2] + p[1:-1] + p[2:]
    return (rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) * np.float32(1.0 / 9.0)


def _dilate3(mask: np.ndarray) -> np.ndarray:
    """Grow a boolean mask by one pixel in all 8 directions."""
    h, w = mask.shape
    p = np.zeros((h + 2, w + 2), bool)
    p[1:-1, 1:-1] = mask
    rows = p[:-2] | p[1:-1] | p[2:]
    return rows[:, :-2] | rows[:, 1:-1] | rows[:, 2:]


# --- kernels -------------------------------------------------------------------------------------

PREPROCESS_ENV = "MNISTKIT_PREPROCESS"
"""``numpy`` forces the numpy kernels; ``numba`` requires the compiled ones; unset or ``auto``: the best installed."""


@dataclass(frozen=True)
class Kernels:
    """The pixel loops of :func:`normalise` (which keeps the steps and the selections, percentiles),
    and of decoding an image with transparency.

    The numpy kernels always work; ``mnistkit.runtime.preprocess_jit`` compiles the same loops with
    numba when it is installed (``pip install "mnistkit[fast]"``), for the same answers in less time.
    """

    name: str
    block_mean: Callable[[np.ndarray, int], np.ndarray]
    smooth3: Callable[[np.ndarray], np.ndarray]
    fit_surface: Callable[[np.ndarray, np.ndarray, np.ndarray, float], tuple[np.ndarray, np.ndarray]]
    background_at: Callable[[Background, np.ndarray, np.ndarray], np.ndarray]
    digit_blobs: Callable[[np.ndarray, np.ndarray], np.ndarray]
    bounds: Callable[[np.ndarray], "tuple[int, int, int, int] | None"]
    dilate3: Callable[[np.ndarray], np.ndarray]
    fit_box: Callable[[np.ndarray], np.ndarray]
    place: Callable[[np.ndarray], np.ndarray]
    gray_alpha: Callable[[np.ndarray], np.ndarray]  # decoding: uint8 (H, W, 2) gray + alpha, composited


NUMPY_KERNELS = Kernels(
    "numpy", _block_mean, _smooth3, _fit_surface, lambda b, ys, xs: b.at(ys, xs),
    _digit_blobs, _bounds, _dilate3, _fit_box, _place, array_to_gray,
)


_worker = False  # set by kernels_for_worker()


def kernels_for_worker() -> Kernels:
    """:func:`kernels`, in a worker process started together with its main process (``mnistkit
    classify --jobs N``): the workers load the compiled kernels side by side, once the main process
    has loaded (or, the first time, compiled) them, instead of one after the other."""
    global _worker
    _worker = True
    return kernels()


@lru_cache(maxsize=1)
def kernels() -> Kernels:
    """The kernels :func:`normalise` uses: compiled ones when numba is installed, unless
    ``MNISTKIT_PREPROCESS=numpy`` (read once per process). Loading the compiled ones takes ~0.3 s
    (numba's import and disk cache); the first time after an install, compilation takes ~10-15 s
    (minutes on a Pi).

    Raises:
        UsageError: ``MNISTKIT_PREPROCESS`` is not auto/numpy/numba, or is numba without numba installed.
    """
    choice = os.environ.get(PREPROCESS_ENV, "auto").strip().lower() or "auto"
    if choice not in ("auto", "numpy", "numba"):
        raise UsageError(f"{PREPROCESS_ENV}={choice!r} is not auto, numpy or numba; unset it or pick one")
    if choice == "numpy":
        return NUMPY_KERNELS
    try:
        from mnistkit.runtime.preprocess_jit import KERNELS, warm_up
    except ImportError as exc:  # numba missing, or too old/new for this numpy
        if choice == "numba":
            raise UsageError(
                f'{PREPROCESS_ENV}=numba but numba cannot be imported ({exc}); pip install "mnistkit[fast]"'
            ) from None
        return NUMPY_KERNELS
    try:
        warm_up(shared=_worker)
    except Exception as exc:  # noqa: BLE001 - a numba that cannot compile here must not stop the work
        if choice == "numba":
            raise UsageError(f"{PREPROCESS_ENV}=numba but the kernels do not compile here: {exc}") from None
        warnings.warn(f"compiled preprocessing unavailable ({type(exc).__name__}: {exc}); using numpy", stacklevel=2)
        return NUMPY_KERNELS
    return KERNELS
