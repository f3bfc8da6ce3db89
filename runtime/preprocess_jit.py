"""The pixel loops of :func:`mnistkit.runtime.preprocess.normalise`, compiled with numba.

numpy runs them as ~290 small calls per image, each paying Python's and numpy's call overhead; here
each is one compiled loop, and the normalisation takes about half the time. :func:`preprocess.kernels`
uses these when numba is installed (``pip install "mnistkit[fast]"``) unless
``MNISTKIT_PREPROCESS=numpy``. Each function computes what the numpy function of the same name in
``preprocess.py`` computes (read that for the why of each step), in float32 like it; the tests hold
the two to the same answers. Compiled code is cached on disk (``cache=True``): the first use after
an install compiles for ~10-15 s (minutes on a Pi), later processes load it in ~0.3 s.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numba import njit

from mnistkit.runtime.errors import ImageError
from mnistkit.runtime.preprocess import (
    BOX, NO_BLOB as NO_BLOB_MESSAGE, NUMPY_KERNELS, ONLY_SPECKS, Background, Kernels,
)

F32 = np.float32
OK, NO_BLOB, SPECKS = 0, 1, 2


@njit(cache=True, nogil=True)
def _block_mean(sub, u8, f):
    """Mean over f x f blocks, the ragged last block repeating its last row/column; uint8 (u8) is /255."""
    h, w = sub.shape
    if f == 1:
        out = np.empty((h, w), F32)
        for i in range(h):
            for j in range(w):
                out[i, j] = (F32(sub[i, j]) / F32(255.0)) if u8 else F32(sub[i, j])
        return out
    rows = _block_sum_rows(sub, f)
    full, rest = divmod(w, f)
    out = np.empty((rows.shape[0], full + (1 if rest > 0 else 0)), F32)
    scale = F32(1.0 / (f * f) / (255.0 if u8 else 1.0))
    for i in range(rows.shape[0]):
        row, o = rows[i], out[i]
        # The common factors spelled out: a constant stride vectorises, a variable one does not (8x).
        if f == 2:
            for b in range(full):
                o[b] = (row[2 * b] + row[2 * b + 1]) * scale
        elif f == 3:
            for b in range(full):
                o[b] = ((row[3 * b] + row[3 * b + 1]) + row[3 * b + 2]) * scale
        elif f == 4:
            for b in range(full):
                o[b] = (((row[4 * b] + row[4 * b + 1]) + row[4 * b + 2]) + row[4 * b + 3]) * scale
        else:
            for b in range(full):
                s = row[b * f]
                for k in range(1, f):
                    s += row[b * f + k]
                o[b] = s * scale
        if rest:
            s = row[full * f]
            for k in range(1, rest):
                s += row[full * f + k]
            o[full] = (s + F32(f - rest) * row[w - 1]) * scale
    return out


@njit(cache=True, nogil=True)
def _block_sum_rows(a, f):
    """Sums of blocks of ``f`` rows, float32, a ragged last block repeating its last row."""
    h, w = a.shape
    full, rest = divmod(h, f)
    out = np.empty((full + (1 if rest > 0 else 0), w), F32)
    for b in range(full + (1 if rest > 0 else 0)):
        first = b * f
        n = f if b < full else rest
        acc = out[b]
        src = a[first]
        for j in range(w):
            acc[j] = F32(src[j])
        for i in range(1, n):
            src = a[first + i]
            for j in range(w):
                acc[j] += F32(src[j])
        if n < f:
            weight = F32(f - n)
            last = a[h - 1]
            for j in range(w):
                acc[j] += weight * F32(last[j])
    return out


@njit(cache=True, nogil=True)
def _smooth3(a):
    h, w = a.shape
    rows = np.empty((h, w), F32)
    for i in range(h):
        up, mid, down, acc = a[max(i - 1, 0)], a[i], a[min(i + 1, h - 1)], rows[i]
        for j in range(w):
            acc[j] = (up[j] + mid[j]) + down[j]
    out = np.empty((h, w), F32)
    ninth = F32(1.0 / 9.0)
    for i in range(h):
        r, o = rows[i], out[i]
        o[0] = ((r[0] + r[0]) + r[min(1, w - 1)]) * ninth
        for j in range(1, w - 1):
            o[j] = ((r[j - 1] + r[j]) + r[j + 1]) * ninth
        if w > 1:
            o[w - 1] = ((r[w - 2] + r[w - 1]) + r[w - 1]) * ninth
    return out


@njit(cache=True, nogil=True)
def _median(a):
    """Median of all values (the upper one for an even count), as float64 (few values: a sort)."""
    return np.float64(np.sort(a.ravel())[a.size // 2])


@njit(cache=True, nogil=True)
def _fit_surface(values, cy, cx, contrast):
    """Robust quadratic trend + correction grid from the cells' 25th percentiles (``values``)."""
    g = cy.size
    coef = np.zeros(6, F32)
    grid = np.zeros((g, g), F32)
    if g < 4:
        coef[0] = F32(_median(values))
        return coef, grid
    design = np.empty((g * g, 6))
    for gy in range(g):
        for gx in range(g):
            y, x = np.float64(cy[gy]), np.float64(cx[gx])
            row = design[gy * g + gx]
            row[0], row[1], row[2], row[3], row[4], row[5] = 1.0, y, x, y * y, y * x, x * x
    vals = values.astype(np.float64)
    use = values <= F32(_median(values))
    resid = np.zeros(g * g)
    for _ in range(4):
        ata = np.zeros((6, 6))
        atb = np.zeros(6)
        for c in range(g * g):
            if use[c]:
                for p in range(6):
                    atb[p] += design[c, p] * vals[c]
                    for q in range(6):
                        ata[p, q] += design[c, p] * design[c, q]
        for p in range(6):
            ata[p, p] += 1e-6
        sol = _solve6(ata, atb)
        new = np.empty(g * g, np.bool_)
        same, count = True, 0
        for c in range(g * g):
            fit = 0.0
            for p in range(6):
                fit += design[c, p] * sol[p]
            resid[c] = vals[c] - fit
            new[c] = resid[c] < 0.35 * contrast
            if new[c]:
                count += 1
            same = same and new[c] == use[c]
        for p in range(6):
            coef[p] = F32(sol[p])
        if count < 8 or same:
            break
        use = new
    for c in range(g * g):
        if use[c]:
            grid[c // g, c % g] = F32(resid[c])
    return coef, grid


@njit(cache=True, nogil=True)
def _solve6(a, b):
    """Solve a x = b (Gaussian elimination with partial pivoting); a and b are overwritten."""
    n = b.size
    for col in range(n):
        piv = col
        for r in range(col + 1, n):
            if abs(a[r, col]) > abs(a[piv, col]):
                piv = r
        if piv != col:
            for c in range(n):
                a[col, c], a[piv, c] = a[piv, c], a[col, c]
            b[col], b[piv] = b[piv], b[col]
        for r in range(col + 1, n):
            m = a[r, col] / a[col, col]
            for c in range(col, n):
                a[r, c] -= m * a[col, c]
            b[r] -= m * b[col]
    x = np.zeros(n)
    for r in range(n - 1, -1, -1):
        s = b[r]
        for c in range(r + 1, n):
            s -= a[r, c] * x[c]
        x[r] = s / a[r, r]
    return x


@njit(cache=True, nogil=True)
def _interp_matrix(pos, centres):
    n = centres.size
    out = np.empty((pos.size, n), F32)
    if n == 1:
        out[:] = F32(1.0)
        return out
    step = F32((centres[n - 1] - centres[0]) / F32(n - 1))
    for i in range(pos.size):
        p = min(max(pos[i], centres[0]), centres[n - 1])
        for j in range(n):
            out[i, j] = max(F32(1.0) - abs(p - centres[j]) / step, F32(0.0))
    return out


@njit(cache=True, nogil=True)
def _background_at(coef, grid, cy, cx, ys, xs):
    """The quadratic trend plus the interpolated correction grid at every (ys[i], xs[j])."""
    n = grid.shape[0]
    core = np.zeros((3 + n, 3 + n), F32)
    core[0, 0], core[1, 0], core[0, 1], core[2, 0], core[1, 1], core[0, 2] = (
        coef[0], coef[1], coef[2], coef[3], coef[4], coef[5])
    core[3:, 3:] = grid
    left = np.empty((ys.size, 3 + n), F32)
    left[:, 0], left[:, 1], left[:, 2] = F32(1.0), ys, ys * ys
    left[:, 3:] = _interp_matrix(ys, cy)
    right = np.empty((3 + n, xs.size), F32)
    right[0], right[1], right[2] = F32(1.0), xs, xs * xs
    right[3:] = _interp_matrix(xs, cx).T
    return _matmul(_matmul(left, core), right)


@njit(cache=True, nogil=True)
def _matmul(a, b):
    out = np.zeros((a.shape[0], b.shape[1]), F32)
    for i in range(a.shape[0]):
        for k in range(a.shape[1]):
            aik = a[i, k]
            if aik != 0:
                for j in range(b.shape[1]):
                    out[i, j] += aik * b[k, j]
    return out


@njit(cache=True, nogil=True)
def _digit_blobs(x, mask):
    """(code, keep): the heaviest blob of ``mask`` and its pieces (code OK), or NO_BLOB / SPECKS."""
    h, w = mask.shape
    label = np.full((h, w), -1, np.int32)
    parent = np.empty(h * w, np.int32)
    n = 0
    for i in range(h):
        for j in range(w):
            if not mask[i, j]:
                continue
            mine = -1
            for di, dj in ((0, -1), (-1, -1), (-1, 0), (-1, 1)):  # 8-connected, already visited
                a, b = i + di, j + dj
                if a >= 0 and 0 <= b < w and label[a, b] >= 0:
                    other = _root(parent, label[a, b])
                    if mine < 0:
                        mine = other
                    elif other != mine:
                        lo_, hi_ = min(mine, other), max(mine, other)
                        parent[hi_] = lo_
                        mine = lo_
            if mine < 0:
                parent[n] = n
                mine = n
                n += 1
            label[i, j] = mine
    if n == 0:
        return NO_BLOB, mask
    # Blobs numbered in the order of their first pixel (row-major), with their mass and bounds.
    blob_of = np.full(n, -1, np.int32)
    m = 0
    mass = np.zeros(n)
    top, bottom = np.full(n, h, np.int64), np.full(n, -1, np.int64)
    left, right = np.full(n, w, np.int64), np.full(n, -1, np.int64)
    for i in range(h):
        for j in range(w):
            if label[i, j] < 0:
                continue
            r = _root(parent, label[i, j])
            if blob_of[r] < 0:
                blob_of[r] = m
                m += 1
            k = blob_of[r]
            label[i, j] = k
            mass[k] += x[i, j]
            top[k], bottom[k] = min(top[k], i), max(bottom[k], i)
            left[k], right[k] = min(left[k], j), max(right[k], j)
    main, best = 0, -np.inf  # the first highest score, as np.argmax
    for k in range(m):
        edge = top[k] == 0 or left[k] == 0 or bottom[k] == h - 1 or right[k] == w - 1
        score = (0.3 if edge else 1.0) * mass[k]
        if score > best:
            main, best = k, score
    margin = 0.25 * max(bottom[main] - top[main] + 1, right[main] - left[main] + 1) + 1
    near = np.zeros(m, np.bool_)
    for k in range(m):
        far = _overlaps(top, bottom, left, right, k, main, margin) and mass[k] >= 0.1 * mass[main]
        touching = _overlaps(top, bottom, left, right, k, main, 1.0) and mass[k] >= 0.02 * mass[main]
        near[k] = far or touching or k == main
    keep = np.zeros((h, w), np.bool_)
    count = 0
    for i in range(h):
        for j in range(w):
            if label[i, j] >= 0 and near[label[i, j]]:
                keep[i, j] = True
                count += 1
    if count < 3:
        return SPECKS, keep
    return OK, keep


@njit(cache=True, nogil=True)
def _root(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True, nogil=True)
def _overlaps(top, bottom, left, right, k, main, m):
    return (bottom[k] >= top[main] - m and top[k] <= bottom[main] + m
            and right[k] >= left[main] - m and left[k] <= right[main] + m)


@njit(cache=True, nogil=True)
def _bounds(mask):
    """(top, bottom, left, right), ends exclusive; bottom = -1 when the mask is empty."""
    h, w = mask.shape
    top, bottom, left, right = h, -1, w, -1
    for i in range(h):
        for j in range(w):
            if mask[i, j]:
                top, bottom = min(top, i), i + 1
                left, right = min(left, j), max(right, j + 1)
    return top, bottom, left, right


@njit(cache=True, nogil=True)
def _dilate3(mask):
    h, w = mask.shape
    rows = np.empty((h, w), np.bool_)
    for i in range(h):
        up, mid, down, acc = mask[max(i - 1, 0)], mask[i], mask[min(i + 1, h - 1)], rows[i]
        for j in range(w):
            acc[j] = up[j] | mid[j] | down[j]
    out = np.empty((h, w), np.bool_)
    for i in range(h):
        r, o = rows[i], out[i]
        o[0] = r[0] | r[min(1, w - 1)]
        for j in range(1, w - 1):
            o[j] = r[j - 1] | r[j] | r[j + 1]
        if w > 1:
            o[w - 1] = r[w - 2] | r[w - 1]
    return out


@njit(cache=True, nogil=True)
def _resize_matrix(n, m):
    if m > n:
        pos = np.empty(m, F32)
        for i in range(m):
            pos[i] = (F32(i) + F32(0.5)) * F32(n / m) - F32(0.5)
        return _interp_matrix(pos, np.arange(n).astype(F32))
    s = n / m
    out = np.zeros((m, n), F32)
    for i in range(m):
        lo = i * s
        for j in range(n):
            overlap = min(j + 1, lo + s) - max(j, lo)
            if overlap > 0:
                out[i, j] = F32(overlap / s)
    return out


@njit(cache=True, nogil=True)
def _fit_box(b):
    h, w = b.shape
    scale = BOX / max(h, w)
    mh, mw = max(1, int(np.rint(h * scale))), max(1, int(np.rint(w * scale)))
    out = _matmul(_matmul(_resize_matrix(h, mh), b), _resize_matrix(w, mw).T.copy())
    peak = np.float64(out.max())
    if peak > 0:
        gain = F32(1.0 / peak)
        for i in range(mh):
            for j in range(mw):
                out[i, j] = min(max(out[i, j] * gain, F32(0.0)), F32(1.0))
    return out


@njit(cache=True, nogil=True)
def _gray_alpha(la):
    """uint8 gray + alpha (H, W, 2) to float32, composited on white, or on black when that shows the
    picture with over twice the contrast (light ink): ``imageio.array_to_gray``'s rule."""
    h, w = la.shape[0], la.shape[1]
    on_black, on_white = np.empty((h, w), F32), np.empty((h, w), F32)
    lo_b, hi_b, lo_w, hi_w = F32(np.inf), F32(-np.inf), F32(np.inf), F32(-np.inf)
    for i in range(h):
        ob, ow = on_black[i], on_white[i]
        for j in range(w):
            alpha = F32(la[i, j, 1]) / F32(255.0)
            b = (F32(la[i, j, 0]) / F32(255.0)) * alpha
            white = b + (F32(1.0) - alpha)
            ob[j], ow[j] = b, white
            lo_b, hi_b = min(lo_b, b), max(hi_b, b)
            lo_w, hi_w = min(lo_w, white), max(hi_w, white)
    return on_black if hi_b - lo_b > F32(2.0) * (hi_w - lo_w) else on_white


# --- the kernels, with the numpy kernels' signatures ---------------------------------------------


def _block_mean_kernel(a: np.ndarray, f: int) -> np.ndarray:
    return _block_mean(a, a.dtype == np.uint8, f)


def _bounds_kernel(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    top, bottom, left, right = _bounds(mask)
    return None if bottom < 0 else (top, bottom, left, right)


def _digit_blobs_kernel(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    code, keep = _digit_blobs(x, mask)
    if code != OK:
        raise ImageError(NO_BLOB_MESSAGE if code == NO_BLOB else ONLY_SPECKS)
    return keep


def _background_at_kernel(b: Background, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    return _background_at(b.coef, b.grid, b.cy, b.cx, ys, xs)


def warm_up(shared: bool = False) -> None:
    """Compile every kernel (the first use after an install, ~10-15 s) or load it from the disk cache.

    Runs :func:`preprocess.normalise` on a few synthetic pages covering the input types (uint8,
    read-only uint8 and float32; the analysis copy reused as the region, and a region of its own)
    and composites a gray + alpha page, so that compilation happens once, here, and not in the
    middle of a job. Meanwhile it holds a lock file: exclusively, so that of several processes
    starting at once one compiles and the others then load its cache; ``shared`` holders (bulk
    worker processes) load side by side and wait only for an exclusive one (their main process,
    loading or compiling at the same time).
    """
    from mnistkit.runtime.preprocess import normalise

    with _cache_lock(shared):
        for side in (100, 400):
            page = np.full((side, side * 3 // 4), 200, np.uint8)
            page[side // 3: 2 * side // 3, side // 3: side // 3 + side // 10 + 2] = 30  # a "1"
            decoded = page.copy()
            decoded.setflags(write=False)  # as np.asarray gives a decoded Pillow image
            for gray in (page, decoded, page.astype(np.float32) / np.float32(255.0)):
                try:
                    normalise(gray, KERNELS)
                except ImageError:
                    pass
        la = np.stack([page, np.full_like(page, 255)], axis=-1)
        la.setflags(write=False)
        KERNELS.gray_alpha(la)


@contextmanager
def _cache_lock(shared: bool) -> Iterator[None]:
    """flock on a per-user file in the temp folder; without flock (Windows) or a temp folder, no lock."""
    try:
        import fcntl

        fd = os.open(Path(tempfile.gettempdir()) / f"mnistkit-kernels-{os.getuid()}.lock",
                     os.O_RDWR | os.O_CREAT, 0o600)
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


KERNELS = Kernels(
    "numba", _block_mean_kernel, _smooth3, _fit_surface, _background_at_kernel,
    # placing by the centre of mass stays numpy's: a compiled sum rounded differently can move a
    # digit whose centre falls exactly between two pixels, and the numpy step costs only ~8 us
    _digit_blobs_kernel, _bounds_kernel, _dilate3, _fit_box, NUMPY_KERNELS.place, _gray_alpha,
)
