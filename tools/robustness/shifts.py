"""Controlled, seeded distribution shifts of MNIST digits (the robustness benchmark's inputs).

Each shift maps uint8 MNIST images (N, 28, 28) to float32 images (N, 28, 28) in [0, 1] the way a
real capture differs from MNIST: a low-resolution scan upscaled, a marker's thick or a pencil's thin
strokes, rotation, slant, size, a digit off-centre against the border, blur, sensor noise, broken
strokes, dark ink on light paper. Random parameters come from ``numpy.random.default_rng([seed,
index])`` per shift, so a shifted set is the same on every machine. Image operations are
scipy.ndimage's and Pillow's. The benchmark (tools/robustness/benchmark.py) then passes every image through
the runtime's preprocessing, as the product would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

SIDE = 28


def require_scipy():
    """scipy.ndimage, or MissingExtraError naming the extra."""
    try:
        from scipy import ndimage
    except ImportError:
        from mnistkit.runtime.errors import MissingExtraError

        raise MissingExtraError('the robustness benchmark needs scipy: pip install "mnistkit[robustness]"') from None
    return ndimage


def _float(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / np.float32(255.0)


def _resample(x: np.ndarray, side: int) -> np.ndarray:
    """Down to side x side (area average), back up to 28x28 (bicubic), like an upscaled scan."""
    from PIL import Image

    out = np.empty(x.shape, np.float32)
    for i, img in enumerate(x):
        small = Image.fromarray(img).resize((side, side), Image.Resampling.BOX)
        out[i] = np.asarray(small.resize((SIDE, SIDE), Image.Resampling.BICUBIC), np.float32) / 255.0
    return out


def _affine(x: np.ndarray, matrices: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
    """Apply per-image 2x2 forward maps about the centre (bilinear, zero fill)."""
    ndimage = require_scipy()
    c = np.array([(SIDE - 1) / 2] * 2)
    out = np.empty(x.shape, np.float32)
    f = _float(x)
    for i, m in enumerate(matrices):
        inv = np.linalg.inv(m)  # affine_transform maps output coordinates to input ones
        shift = np.zeros(2) if offsets is None else offsets[i]
        out[i] = ndimage.affine_transform(f[i], inv, offset=c - inv @ (c + shift), order=1, cval=0.0)
    return out


def _signed(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    return rng.uniform(lo, hi, n) * rng.choice([-1.0, 1.0], n)


def rotate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotation by 10-20 degrees either way."""
    t = np.deg2rad(_signed(rng, len(x), 10, 20))
    # (row, col) coordinates: rotation matrix in that order
    m = np.stack([np.stack([np.cos(t), -np.sin(t)], 1), np.stack([np.sin(t), np.cos(t)], 1)], 1)
    return _affine(x, m)


def slant(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Horizontal shear (slant) of 0.2-0.4 either way (11-22 degrees)."""
    s = _signed(rng, len(x), 0.2, 0.4)
    m = np.zeros((len(x), 2, 2))
    m[:, 0, 0] = m[:, 1, 1] = 1.0
    m[:, 1, 0] = s  # col += s * row
    return _affine(x, m)


def scale(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform scaling by 0.7-1.2 about the centre."""
    z = rng.uniform(0.7, 1.2, len(x))
    return _affine(x, z[:, None, None] * np.eye(2)[None])


def to_border(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Move the digit until its bounding box touches a random side of the frame."""
    out = np.zeros(x.shape, np.float32)
    f = _float(x)
    sides = rng.integers(0, 4, len(x))
    for i, img in enumerate(f):
        rows, cols = np.nonzero(img.any(axis=1))[0], np.nonzero(img.any(axis=0))[0]
        dy = dx = 0
        side = sides[i]
        if side == 0:
            dy = -rows[0]
        elif side == 1:
            dy = SIDE - 1 - rows[-1]
        elif side == 2:
            dx = -cols[0]
        else:
            dx = SIDE - 1 - cols[-1]
        out[i] = np.roll(img, (dy, dx), axis=(0, 1))
    return out


def thicken(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Marker strokes: grey dilation with a 3x3 cross (about 2 pixels wider)."""
    ndimage = require_scipy()
    cross = ndimage.generate_binary_structure(2, 1)
    return np.stack([ndimage.grey_dilation(img, footprint=cross) for img in _float(x)])


def thin(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pencil strokes: grey erosion with a 2x2 square (about 1 pixel thinner)."""
    ndimage = require_scipy()
    return np.stack([ndimage.grey_erosion(img, size=(2, 2)) for img in _float(x)])


def blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Out of focus: Gaussian blur, sigma 1.2 pixels."""
    ndimage = require_scipy()
    return np.stack([ndimage.gaussian_filter(img, 1.2) for img in _float(x)])


def noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise: additive Gaussian, sigma 0.2, clipped to [0, 1]."""
    return np.clip(_float(x) + rng.normal(0.0, 0.2, x.shape), 0.0, 1.0).astype(np.float32)


def broken(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Broken strokes: two 2-pixel-wide gaps cut along random lines through the digit."""
    from PIL import Image, ImageDraw

    f = _float(x)
    out = np.empty(x.shape, np.float32)
    for i, img in enumerate(f):
        ys, xs = np.nonzero(img > 0.3)
        mask = Image.new("L", (SIDE, SIDE), 255)
        draw = ImageDraw.Draw(mask)
        for _ in range(2):
            k = rng.integers(len(ys))  # a line through a random ink pixel
            angle = rng.uniform(0, np.pi)
            dx, dy = 20 * np.cos(angle), 20 * np.sin(angle)
            draw.line([(xs[k] - dx, ys[k] - dy), (xs[k] + dx, ys[k] + dy)], fill=0, width=2)
        out[i] = img * (np.asarray(mask) > 0)
    return out


def invert(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dark ink on light paper (the preprocessing must invert it)."""
    return 1.0 - _float(x)


def lowres(side: int) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """Captured at ``side`` x ``side`` pixels and upscaled back to 28x28."""

    def shift(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _resample(x, side)

    shift.__doc__ = f"Captured at {side}x{side} and upscaled: area down, bicubic up."
    return shift


@dataclass(frozen=True)
class Shift:
    """One named shift of the benchmark."""

    name: str
    fn: Callable[[np.ndarray, np.random.Generator], np.ndarray]

    @property
    def description(self) -> str:
        """First line of the shift function's docstring."""
        return (self.fn.__doc__ or "").strip().splitlines()[0]

    def apply(self, x: np.ndarray, seed: int, index: int) -> np.ndarray:
        """Shifted float32 copy of uint8 images ``x`` (seeded by ``seed`` and the shift's ``index``)."""
        return self.fn(np.asarray(x, np.uint8), np.random.default_rng([seed, index]))


def clean(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The MNIST test images unchanged."""
    return _float(x)


SHIFTS: tuple[Shift, ...] = (
    Shift("lowres-8", lowres(8)),
    Shift("lowres-12", lowres(12)),
    Shift("lowres-16", lowres(16)),
    Shift("thick", thicken),
    Shift("thin", thin),
    Shift("rotate", rotate),
    Shift("slant", slant),
    Shift("scale", scale),
    Shift("border", to_border),
    Shift("blur", blur),
    Shift("noise", noise),
    Shift("broken", broken),
    Shift("inverted", invert),
)
"""The benchmark's shifts, in table order (``clean`` is reported separately)."""

CLEAN = Shift("clean", clean)
