"""Seeded on-the-fly augmentation for the tf.data training pipeline.

Real captures differ from MNIST's: slant, rotation, size, thick marker or thin pencil strokes,
low-resolution scans upscaled, blur, sensor noise and broken strokes. :func:`augment_batch` applies
a random mix of these to each image of a batch, each family with its own probability, so a share of
the images stays clean (clean accuracy must not suffer). Everything is drawn with stateless random
ops from a per-batch seed, so a run repeats exactly with the same recipe seed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

SIDE = 28


@dataclass(frozen=True)
class Augmentation:
    """Strength and probability of each augmentation family (a probability of 0 disables it)."""

    affine: float = 0.0  # probability of a random affine transform
    rotate_deg: float = 0.0
    shear: float = 0.0  # horizontal shear (slant): x += shear * y
    scale: tuple[float, float] = (1.0, 1.0)
    shift: float = 0.0  # pixels
    stroke: float = 0.0  # probability of thickening or thinning the strokes
    lowres: float = 0.0  # probability of down- and up-sampling
    lowres_sizes: tuple[int, ...] = (8, 10, 12, 14, 16, 20)
    blur: float = 0.0
    noise: float = 0.0  # probability of Gaussian noise with sigma up to noise_sigma
    noise_sigma: float = 0.2
    broken: float = 0.0  # probability of erasing blotches of the strokes

    @property
    def enabled(self) -> bool:
        """True if any family is switched on."""
        return any(p > 0 for p in (self.affine, self.stroke, self.lowres, self.blur, self.noise, self.broken))

    def to_dict(self) -> dict:
        """Plain-dict form for manifests."""
        return asdict(self)


NONE = Augmentation()
"""No augmentation."""

LIGHT = Augmentation(
    affine=0.6, rotate_deg=15, shear=0.25, scale=(0.8, 1.15), shift=2.0,
    stroke=0.3, lowres=0.2, lowres_sizes=(12, 14, 16, 20), blur=0.1, noise=0.1, noise_sigma=0.15, broken=0.1,
)
"""Milder mix for the small models (linear, mlp, rnn), whose capacity is the limit."""

FULL = Augmentation(
    affine=0.7, rotate_deg=22, shear=0.4, scale=(0.68, 1.25), shift=2.5,
    stroke=0.4, lowres=0.25, blur=0.15, noise=0.15, noise_sigma=0.25, broken=0.15,
)
"""The mix for the larger models (cnn, lstm, bilstm)."""

PRESETS: dict[str, Augmentation] = {"none": NONE, "light": LIGHT, "full": FULL}


def augment_batch(images, seed, aug: Augmentation):
    """Augment a batch of float32 images (B, 28, 28) in [0, 1].

    Args:
        images: tf.Tensor (B, 28, 28) float32.
        seed: int64 tensor of shape (2,), different for every batch (see :func:`seeded_batches`).
        aug: what to apply.

    Returns:
        tf.Tensor (B, 28, 28) float32 in [0, 1].
    """
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=32)
    it = iter(range(32))

    def uniform(shape, lo=0.0, hi=1.0):
        return tf.random.stateless_uniform(shape, seeds[next(it)], lo, hi)

    b = tf.shape(images)[0]
    x = images[..., None]

    def choose(p, changed, original):
        mask = tf.cast(uniform([b, 1, 1, 1]) < p, tf.float32)
        return mask * changed + (1.0 - mask) * original

    if aug.affine > 0:
        x = choose(aug.affine, _affine(x, b, aug, uniform), x)
    if aug.stroke > 0:
        thick = tf.nn.max_pool2d(x, 2, 1, "SAME")
        thicker = tf.nn.max_pool2d(x, 3, 1, "SAME")
        thin = -tf.nn.max_pool2d(-x, 2, 1, "SAME")
        pick = tf.one_hot(tf.cast(uniform([b]) * 4, tf.int32), 4)[:, None, None, None, :]
        # soft thinning too: a 2x2 minimum halves the stroke, the mean of both keeps more ink
        variants = tf.stack([thick, thicker, thin, 0.5 * (thin + x)], axis=-1)
        x = choose(aug.stroke, tf.reduce_sum(variants * pick, axis=-1), x)
    if aug.lowres > 0:
        sizes = aug.lowres_sizes
        small = [tf.image.resize(tf.image.resize(x, [s, s], "area"), [SIDE, SIDE], "bilinear") for s in sizes]
        pick = tf.one_hot(tf.cast(uniform([b]) * len(sizes), tf.int32), len(sizes))[:, None, None, None, :]
        x = choose(aug.lowres, tf.reduce_sum(tf.stack(small, axis=-1) * pick, axis=-1), x)
    if aug.blur > 0:
        sigma = uniform([], 0.5, 1.5)
        x = choose(aug.blur, _gaussian(x, sigma), x)
    if aug.broken > 0:
        field = tf.image.resize(uniform([b, 7, 7, 1]), [SIDE, SIDE], "bilinear")
        cut = uniform([b, 1, 1, 1], 0.1, 0.3)
        x = choose(aug.broken, x * tf.cast(field >= cut, tf.float32), x)
    if aug.noise > 0:
        sigma = uniform([b, 1, 1, 1], 0.0, aug.noise_sigma)
        noisy = x + sigma * tf.random.stateless_normal(tf.shape(x), seeds[next(it)])
        x = choose(aug.noise, noisy, x)
    return tf.clip_by_value(x[..., 0], 0.0, 1.0)


def _affine(x, b, aug: Augmentation, uniform):
    """Random rotation, slant, scale and shift about the image centre (bilinear, zero fill)."""
    import tensorflow as tf

    theta = uniform([b], -aug.rotate_deg, aug.rotate_deg) * (math.pi / 180)
    shear = uniform([b], -aug.shear, aug.shear)
    lo, hi = aug.scale
    zoom = tf.exp(uniform([b], math.log(lo), math.log(hi)))
    aspect = tf.exp(uniform([b], -0.1, 0.1))
    sx, sy = zoom * aspect, zoom / aspect
    tx, ty = uniform([b], -aug.shift, aug.shift), uniform([b], -aug.shift, aug.shift)
    cos, sin = tf.cos(theta), tf.sin(theta)
    # forward map A = R @ Shear @ Scale; the transform op wants output -> input, i.e. A^-1
    a00, a01 = cos * sx, (cos * shear - sin) * sy
    a10, a11 = sin * sx, (sin * shear + cos) * sy
    det = a00 * a11 - a01 * a10
    i00, i01, i10, i11 = a11 / det, -a01 / det, -a10 / det, a00 / det
    c = (SIDE - 1) / 2
    ox, oy = c + tx, c + ty  # where the centre goes
    # input = A^-1 (output - (c + t)) + c
    i02 = c - (i00 * ox + i01 * oy)
    i12 = c - (i10 * ox + i11 * oy)
    zeros = tf.zeros_like(theta)
    transform = tf.stack([i00, i01, i02, i10, i11, i12, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transform, output_shape=[SIDE, SIDE], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="CONSTANT",
    )


def _gaussian(x, sigma):
    """Separable Gaussian blur of (B, 28, 28, 1) with one ``sigma`` (tensor) for the batch."""
    import tensorflow as tf

    r = tf.range(-3.0, 4.0)
    k = tf.exp(-0.5 * tf.square(r / sigma))
    k = k / tf.reduce_sum(k)
    x = tf.nn.conv2d(x, tf.reshape(k, [7, 1, 1, 1]), 1, "SAME")
    return tf.nn.conv2d(x, tf.reshape(k, [1, 7, 1, 1]), 1, "SAME")


def seeded_batches(x, y, batch_size: int, seed: int, aug: Augmentation, shift: int = 0):
    """A shuffled, batched tf.data pipeline of (images, labels), augmented on the fly.

    Args:
        x: float32 images (N, 28, 28) in [0, 1].
        y: labels (N,).
        batch_size: images per batch.
        seed: the recipe seed: shuffling and augmentation repeat exactly with it.
        aug: augmentation to apply (may be NONE).
        shift: legacy random translation by up to this many pixels (recipes before augmentation).
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if aug.enabled:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda xy, s: (augment_batch(xy[0], s, aug), xy[1]), num_parallel_calls=1, deterministic=True
        )
    elif shift:
        import keras

        factor = shift / SIDE
        layer = keras.layers.RandomTranslation(factor, factor, fill_mode="constant", seed=seed)
        ds = ds.map(lambda a, b: (tf.squeeze(layer(a[..., None], training=True), -1), b))
    return ds.prefetch(2)
