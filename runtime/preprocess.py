"""Turn a real digit image into an MNIST-style input (white digit on black, 20x20 box, 28x28 frame).

MNIST digits are white on black, scaled to fit a 20x20 box with their aspect ratio kept, and centred
by their centre of mass in a 28x28 frame. :func:`prepare` does the same to a photo or scan:

1. decode to grayscale (``imageio.read_gray``; alpha is composited on white);
2. on a copy of at most 160 pixels a side: find the polarity (a light background is inverted),
   fit the background (a robust quadratic trend plus a correction grid, from cells without ink)
   and subtract it, which removes uneven lighting and paper tone;
3. threshold above the noise floor, label connected blobs and keep the main one plus the pieces
   near it, dropping specks, dirt and far-away marks;
4. in the digit's region (at most 160 pixels a side): subtract the background, binarise softly
   at 35% of the ink level (never below 3x the noise), crop to the digit;
5. fit into 20x20 keeping the aspect ratio (area averaging), scale the peak to 1 and place it in
   28x28 so its centre of mass lands on pixel (14, 14).

numpy only: Pillow is needed only to decode files and bytes. Arrays that already look like MNIST
(see :func:`is_mnist_style`) are only scaled to [0, 1]. The constants below were tuned on a
photo-like set from ``tools/scripts/make_samples.py`` (seed 1); ``tools/scripts/measure_photos.py`` measures them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mnistkit.runtime.errors import ImageError
from mnistkit.runtime.imageio import ImageInput, array_to_gray, describe, read_gray

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
    gray = read_gray(image)
    if is_mnist_style(gray):
        return gray
    try:
        return normalise(gray)
    except ImageError as exc:
        raise ImageError(f"{describe(image)}: {exc}") from None


def normalise(gray: np.ndarray) -> np.ndarray:
    """Preprocess a grayscale float32 image (H, W) in [0, 1] into an MNIST-style (28, 28) array.

    Raises:
        ImageError: the image is blank (one flat colour) or holds no digit-like blob.
    """
    height, width = gray.shape
    # 1. Find the digit on a small copy: polarity, background surface, noise floor, blobs.
    f = max(1, math.ceil(max(height, width) / ANALYSIS_SIDE))
    small = _block_mean(gray, f)
    smooth = _smooth3(small)
    lo, hi, med = float(smooth.min()), float(smooth.max()), _median(small[::2, ::2])
    if hi - lo < MIN_CONTRAST:
        raise ImageError(
            "no digit found: the image is blank (one flat colour); "
            "pass a picture of one dark digit on light paper or a light digit on dark"
        )
    light = med - lo > hi - med
    ink = 1.0 - smooth if light else smooth
    ys, xs = _centres(0, small.shape[0], f) / height - 0.5, _centres(0, small.shape[1], f) / width - 0.5
    background = _fit_background(ink, ys, xs, hi - lo)
    x = ink - background.at(ys, xs)
    sample = x[::2, ::2]  # medians of a quarter of the pixels are plenty, and 4x cheaper
    base = _median(sample)
    sigma = 1.4826 * _median(np.abs(sample - base))
    peak = float(x.max()) - base
    if peak < MIN_CONTRAST / 2 or peak < 3 * sigma:
        raise ImageError("no digit found: only noise or lighting changes; pass a clearer picture of a digit")
    keep = _digit_blobs(x, x > base + max(4.0 * sigma, 0.2 * peak))
    rows, cols = np.nonzero(keep.any(axis=1))[0], np.nonzero(keep.any(axis=0))[0]
    r0, r1 = max(0, (rows[0] - 1) * f), min(height, (rows[-1] + 2) * f)
    c0, c1 = max(0, (cols[0] - 1) * f), min(width, (cols[-1] + 2) * f)

    # 2. The digit's region at up to REGION_SIDE pixels: subtract the background, keep the blobs.
    g = max(1, math.ceil(max(r1 - r0, c1 - c0) / REGION_SIDE))
    region = _block_mean(gray[r0:r1, c0:c1], g)
    py, px = _centres(r0, region.shape[0], g), _centres(c0, region.shape[1], g)
    v = (1.0 - region if light else region) - background.at(py / height - 0.5, px / width - 0.5) - base
    near = _dilate3(keep)  # the kept blobs (plus one small pixel), looked up at region pixels
    near = near[np.minimum(py.astype(np.intp) // f, near.shape[0] - 1)]
    near = near[:, np.minimum(px.astype(np.intp) // f, near.shape[1] - 1)]
    outside = v[~near][::4]
    noise = 1.4826 * _median(np.abs(outside - _median(outside))) if outside.size >= 16 else 0.0
    v = np.where(near, v, 0.0).astype(np.float32)

    # 3. Binarise softly at 35% of the ink level (above the noise), crop to the digit.
    values = v[near & (v > 0)]
    if values.size == 0:
        raise ImageError("no digit found after removing the background; pass a clearer picture of a digit")
    k = int(0.99 * (values.size - 1))
    level = float(np.partition(values, k)[k])
    t = max(INK_THRESHOLD * level, 3.0 * noise)
    soft = 0.15 * level
    b = _crop(_clip01(((v - (t - soft)) * np.float32(0.5 / soft)).astype(np.float32)))
    if b is None or max(b.shape) < 3:
        raise ImageError("no digit found, only a speck; pass a clearer picture of a digit")
    # 4. Fit into 20x20, centre by mass in 28x28.
    return _place(_fit_box(b))


# --- steps ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Background:
    """A smooth background: a quadratic trend plus a bilinear correction grid (both normalised)."""

    coef: np.ndarray  # 6 quadratic coefficients over normalised coordinates (-0.5..0.5)
    grid: np.ndarray  # (g, g) residuals of the background cells, 0 where a cell holds ink
    cy: np.ndarray  # normalised coordinates of the cell centres
    cx: np.ndarray

    def at(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Evaluate on the grid of normalised coordinates ``ys`` x ``xs``."""
        c = self.coef
        y, x = ys[:, None], xs[None, :]
        trend = (c[0] + c[1] * y + c[3] * y * y) + x * ((c[2] + c[4] * y) + c[5] * x)
        if not self.grid.any():
            return trend
        return trend + _interp_matrix(ys, self.cy) @ self.grid @ _interp_matrix(xs, self.cx).T


def _fit_background(ink: np.ndarray, ys: np.ndarray, xs: np.ndarray, contrast: float) -> Background:
    """Fit the background of ``ink`` (ink bright) from low percentiles of up to 8x8 cells.

    A quadratic trend is fitted robustly to the cells that hold no ink (starting from the darker
    half, then every cell less than 0.35 * ``contrast`` above the trend); the remaining residuals
    of those cells form a correction grid, so lighting that is not quadratic (a clipped highlight,
    a dark corner) is followed too.

    Args:
        ink: the small image, ink bright.
        ys, xs: normalised (-0.5..0.5) coordinates of its row and column centres.
        contrast: the image's brightness range.
    """
    h, w = ink.shape
    g = min(max(min(h, w) // 8, 1), 8)  # cells of at least 8 pixels
    ch, cw = h // g, w // g
    cells = ink[: g * ch, : g * cw].reshape(g, ch, g, cw).transpose(0, 2, 1, 3).reshape(g * g, -1)
    k = cells.shape[1] // 4
    values = np.partition(cells, k, axis=1)[:, k]  # 25th percentile: a cell must be 3/4 ink to look inky
    cy = ys[: g * ch].reshape(g, ch).mean(axis=1)
    cx = xs[: g * cw].reshape(g, cw).mean(axis=1)
    if g < 4:  # too few cells for a surface: a flat background at the median
        coef = np.array([_median(values), 0, 0, 0, 0, 0], np.float32)
        return Background(coef, np.zeros((g, g), np.float32), cy, cx)
    yy, xx = np.repeat(cy, g), np.tile(cx, g)
    design = np.stack([np.ones_like(yy), yy, xx, yy * yy, yy * xx, xx * xx], axis=1).astype(np.float64)
    use = values <= _median(values)  # start from the half of the cells with the least ink
    for _ in range(4):
        d = design[use]
        coef = np.linalg.solve(d.T @ d + 1e-6 * np.eye(6), d.T @ values[use])  # least squares
        resid = values - design @ coef
        new = resid < 0.35 * contrast
        if new.sum() < 8 or (new == use).all():
            break
        use = new
    grid = np.where(use, resid, 0.0).reshape(g, g)
    return Background(coef.astype(np.float32), grid.astype(np.float32), cy, cx)


def _interp_matrix(pos: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Matrix (len(pos), len(centres)) of linear-interpolation weights, constant beyond the ends."""
    n = len(centres)
    weights = np.zeros((len(pos), n), np.float32)
    if n == 1:
        weights[:] = 1.0
        return weights
    p = np.minimum(np.maximum(pos, centres[0]), centres[-1])
    i = np.minimum(np.maximum(np.searchsorted(centres, p, side="right") - 1, 0), n - 2)
    t = (p - centres[i]) / (centres[i + 1] - centres[i])
    rows = np.arange(len(pos))
    weights[rows, i] = 1.0 - t
    weights[rows, i + 1] += t
    return weights


def _centres(start: int, n: int, f: int) -> np.ndarray:
    """Full-image coordinates of the centres of ``n`` blocks of ``f`` pixels from pixel ``start``."""
    return (start + (np.arange(n, dtype=np.float32) + 0.5) * f).astype(np.float32)


def _digit_blobs(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Keep the heaviest blob of ``mask`` (blobs touching the border count 0.3x) and its pieces.

    Pieces are blobs with >= 10% of its mass within a quarter of its size, or >= 2% of its mass
    touching its bounding box (a stroke broken by thresholding). Returns a boolean mask.
    """
    runs = _runs(mask)
    row, start, end, blob = runs
    if row.size == 0:
        raise ImageError("no digit found; pass a clearer picture of a digit")
    n = int(blob.max()) + 1
    sums = np.zeros((x.shape[0], x.shape[1] + 1), np.float64)
    np.cumsum(x, axis=1, out=sums[:, 1:])
    mass = np.bincount(blob, weights=sums[row, end] - sums[row, start], minlength=n)
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
    keep[mask] = np.repeat(near[blob], end - start)  # mask pixels come in run order
    if np.count_nonzero(keep) < 3:
        raise ImageError("no digit found: only specks; pass a clearer picture of a digit")
    return keep


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Row runs of a 2-D boolean mask and the 8-connected blob each belongs to.

    Returns:
        (row, start, end, blob): one entry per run in row-major order; ``end`` is exclusive and
        ``blob`` numbers the blobs 0..n-1 in the order of their first run.
    """
    h, w = mask.shape
    padded = np.zeros((h, w + 2), np.int8)
    padded[:, 1:-1] = mask
    step = np.diff(padded, axis=1)
    row, start = np.nonzero(step == 1)
    end = np.nonzero(step == -1)[1]
    n = len(row)
    if n == 0:
        return row, start, end, np.zeros(0, np.intp)
    # Runs of the row above that touch run j (8-connected): end_k >= start_j and start_k <= end_j.
    # Runs are sorted by (row, start), so both bounds are one searchsorted over a (row, x) key.
    span = w + 2
    key_end, key_start = row * span + end, row * span + start
    lo = np.searchsorted(key_end, (row - 1) * span + start, side="left")
    hi = np.searchsorted(key_start, (row - 1) * span + end, side="right")
    lo = np.maximum(lo, np.searchsorted(row, row - 1, side="left"))  # stay within the row above
    count = np.maximum(hi - lo, 0)
    blob = np.arange(n)
    if count.any():
        a = np.repeat(np.arange(n), count)
        b = np.repeat(lo - np.cumsum(count) + count, count) + np.arange(int(count.sum()))
        blob = _components(n, a, b)
    return row, start, end, np.unique(blob, return_inverse=True)[1].astype(np.intp)


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
        while True:  # pointer jumping until every node points at its root
            nxt = new[new]
            if (nxt == new).all():
                break
            new = nxt
        if (new == label).all():
            return label
        label = new


def _crop(b: np.ndarray) -> np.ndarray | None:
    """Crop to the bounding box of the non-zero pixels (None when there are none)."""
    rows, cols = np.nonzero(b.any(axis=1))[0], np.nonzero(b.any(axis=0))[0]
    if rows.size == 0:
        return None
    return b[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _fit_box(b: np.ndarray) -> np.ndarray:
    """Resize ``b`` so its longer side is BOX pixels, keeping the aspect ratio; peak scaled to 1.

    Shrinking averages over each output pixel's area (antialiased, like Pillow's BOX filter);
    enlarging interpolates bilinearly. numpy only, so arrays never need Pillow.
    """
    h, w = b.shape
    scale = BOX / max(h, w)
    out = _resize_matrix(h, max(1, round(h * scale))) @ b @ _resize_matrix(w, max(1, round(w * scale))).T
    peak = float(out.max())
    return _clip01((out / peak).astype(np.float32)) if peak > 0 else out.astype(np.float32)


def _resize_matrix(n: int, m: int) -> np.ndarray:
    """(m, n) matrix resampling a length-n signal to length m (area average, or linear when m > n)."""
    if m > n:
        pos = (np.arange(m, dtype=np.float32) + 0.5) * (n / m) - 0.5
        return _interp_matrix(pos, np.arange(n, dtype=np.float32))
    s = n / m
    lo = np.arange(m)[:, None] * s
    j = np.arange(n)[None, :]
    overlap = np.minimum(j + 1, lo + s) - np.maximum(j, lo)
    return (np.maximum(overlap, 0.0) / s).astype(np.float32)


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
    flat = np.ravel(a)
    k = flat.size // 2
    return float(np.partition(flat, k)[k])


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

    Sums one axis at a time and adds the padding as a weight on the last row/column instead of
    materialising it, so memory stays at the input plus (H/f, W) even for extreme aspect ratios
    (a 1 x 200,000 array used to be padded to 1,250 x 200,000, 1 GB).
    """
    if f == 1:
        return a
    h, w = a.shape
    ph, pw = -h % f, -w % f
    if (h + ph) * (w + pw) <= 2 * h * w:  # ordinary shapes: pad by hand (np.pad is slow), strided sums
        if ph or pw:
            p = np.empty((h + ph, w + pw), a.dtype)
            p[:h, :w] = a
            p[h:, :w] = a[-1]
            p[:, w:] = p[:, w - 1 : w]
            a = p
        rows = a[0::f].astype(np.float32)  # strided sums: much faster than reshape(...).mean()
        for i in range(1, f):
            rows += a[i::f]
        out = rows[:, 0::f].copy()
        for j in range(1, f):
            out += rows[:, j::f]
        return out * np.float32(1.0 / (f * f))
    rows = np.add.reduceat(a, np.arange(0, h, f), axis=0, dtype=np.float32)
    if ph:
        rows[-1] += np.float32(ph) * a[-1]
    out = np.add.reduceat(rows, np.arange(0, w, f), axis=1, dtype=np.float32)
    if pw:
        out[:, -1] += np.float32(pw) * rows[:, -1]
    return out * np.float32(1.0 / (f * f))


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
