"""Seeded on-the-fly augmentation (models/augment.py) on real MNIST digits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from mnistkit.models.augment import FULL, NONE, PRESETS, Augmentation, augment_batch, seeded_batches  # noqa: E402
from mnistkit.models.data import to_float  # noqa: E402


@pytest.fixture(scope="module")
def batch(mnist):
    return to_float(mnist.x_train[:256]), mnist.y_train[:256]


def first_epochs(x, y, aug, seed=1, epochs=2):
    ds = seeded_batches(x, y, 64, seed, aug)
    return [np.concatenate([a.numpy() for a, _ in ds]) for _ in range(epochs)]


def test_same_seed_same_images_each_epoch_new_ones(batch):
    x, y = batch
    a1, a2 = first_epochs(x, y, FULL)
    b1, _ = first_epochs(x, y, FULL)
    np.testing.assert_array_equal(a1, b1)
    assert not np.array_equal(a1, a2)
    c1, _ = first_epochs(x, y, FULL, seed=2)
    assert not np.array_equal(a1, c1)
    assert a1.shape == x.shape and a1.min() >= 0.0 and a1.max() <= 1.0


def test_no_augmentation_only_shuffles(batch):
    x, y = batch
    (a,) = first_epochs(x, y, NONE, epochs=1)
    key = lambda imgs: sorted(hash(i.tobytes()) for i in imgs)  # noqa: E731
    assert key(a) == key(x)


def test_full_preset_keeps_some_images_clean_and_changes_most(batch):
    x, y = batch
    (a,) = first_epochs(x, y, FULL, epochs=1)
    originals = {i.tobytes() for i in x}
    unchanged = sum(i.tobytes() in originals for i in a)
    assert 0 < unchanged < 0.2 * len(x)


def test_affine_scales_about_the_centre(batch):
    import tensorflow as tf

    x, _ = batch
    zoom = Augmentation(affine=1.0, scale=(1.3, 1.3))
    out = augment_batch(tf.constant(x[:64]), tf.constant([3, 4], tf.int64), zoom).numpy()
    ratio = out.sum(axis=(1, 2)) / x[:64].sum(axis=(1, 2))
    assert np.median(ratio) == pytest.approx(1.3 ** 2, rel=0.08)  # area grows with the square

    def centre(imgs):
        w = imgs.sum(axis=(1, 2))
        return np.stack([(imgs.sum(2) * np.arange(28)).sum(1) / w, (imgs.sum(1) * np.arange(28)).sum(1) / w], 1)

    moved = Augmentation(affine=1.0, shift=3.0)
    shifted = augment_batch(tf.constant(x[:64]), tf.constant([3, 4], tf.int64), moved).numpy()
    delta = centre(shifted) - centre(x[:64])
    assert np.abs(delta).max() <= 3.6 and np.abs(delta).mean() > 0.8


@pytest.mark.parametrize("family", ["stroke", "lowres", "blur", "noise", "broken"])
def test_each_family_changes_the_digits(batch, family):
    import tensorflow as tf

    x, _ = batch
    aug = dataclasses.replace(NONE, **{family: 1.0})
    out = augment_batch(tf.constant(x[:64]), tf.constant([5, 6], tf.int64), aug).numpy()
    changed = np.abs(out - x[:64]).max(axis=(1, 2)) > 0.05
    assert changed.mean() > 0.8
    assert np.abs(out - x[:64]).mean() > 0.005


def test_presets_are_named_in_recipes():
    from mnistkit.models.recipes import RECIPES

    assert {r.augment for r in RECIPES.values()} <= set(PRESETS)
    assert RECIPES["cnn"].augmentation.enabled


@pytest.mark.slow
def test_augmented_training_repeats_exactly(mnist):
    from mnistkit.models.recipes import default_recipe
    from mnistkit.models.training import train

    recipe = default_recipe("linear").replace(epochs=1, augment="full")
    runs = [train("linear", mnist, recipe, limit=1000, verbose=0) for _ in range(2)]
    for w1, w2 in zip(runs[0].model.get_weights(), runs[1].model.get_weights()):
        np.testing.assert_array_equal(w1, w2)
