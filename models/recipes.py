"""Default training recipes, one per zoo model.

Each recipe: Adam with a cosine-decayed learning rate, dropout where it helps, early stopping on a
seeded validation split, at most 15 epochs, and a seeded on-the-fly augmentation preset
(models/augment.py) so the models survive digits captured unlike MNIST's. Values were chosen to beat
the reference results in the README on the full 60,000-image training set; the robustness they buy
is measured by ``mnistkit evaluate --robustness``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mnistkit.models.augment import PRESETS, Augmentation
from mnistkit.models.zoo import check_name
from mnistkit.runtime.errors import UsageError


@dataclass(frozen=True)
class Recipe:
    """Hyper-parameters of one training run."""

    epochs: int = 15
    batch_size: int = 128
    learning_rate: float = 1e-3
    dropout: float = 0.0
    clipnorm: float | None = None
    validation_split: float = 0.1
    patience: int = 4
    seed: int = 42
    augment_shift: int = 0  # random translation of training images by up to this many pixels
    augment: str = "none"  # on-the-fly augmentation preset (models/augment.py PRESETS)

    @property
    def augmentation(self) -> Augmentation:
        """The augmentation preset named by ``augment``."""
        return PRESETS[self.augment]

    def replace(self, **changes) -> "Recipe":
        """Return a copy with the non-None ``changes`` applied."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        """Plain-dict form for manifests (the augmentation preset spelled out)."""
        return dataclasses.asdict(self) | {"augmentation": self.augmentation.to_dict()}


RECIPES: dict[str, Recipe] = {
    # With the "light" augmentation: 90.63% (goal 92.5%): one dense layer cannot afford it.
    "linear": Recipe(learning_rate=3e-3, batch_size=64),
    # Without the shift augmentation this MLP peaked at 97.9-98.06% (several seeds/rates tried).
    "mlp": Recipe(learning_rate=1e-3, batch_size=64, dropout=0.2, patience=6, augment="light"),
    "rnn": Recipe(learning_rate=1e-3, clipnorm=1.0, augment="light"),
    # Without shifts: lstm 98.78%, bilstm 98.90% (both short of the goal); with them 99.2%+.
    "lstm": Recipe(learning_rate=2e-3, clipnorm=1.0, dropout=0.2, patience=6, augment="full"),
    "bilstm": Recipe(learning_rate=2e-3, clipnorm=1.0, dropout=0.2, patience=6, augment="full"),
    # Before augmentation: dropout 0.4, 12 epochs, 99.43% clean but ~90% on real handwriting.
    "cnn": Recipe(learning_rate=1e-3, dropout=0.3, epochs=15, patience=6, augment="full"),
}

# Documented results this project sets out to beat (reference, then our goal), in percent.
REFERENCE_ACCURACY: dict[str, tuple[str, float]] = {
    "linear": ("~92% (one-layer network, beginner exercise)", 92.5),
    "mlp": ("97.56%", 98.0),
    "rnn": ("~97%", 97.5),
    "lstm": ("98.52% after 15 epochs", 98.9),
    "bilstm": ("98.89% after 15 epochs", 99.0),
    "cnn": ("~99% (Keras example)", 99.3),
}


def default_recipe(name: str) -> Recipe:
    """The default recipe of zoo model ``name``."""
    return RECIPES[check_name(name)]


def validate_recipe(recipe: Recipe, limit: int | None) -> None:
    """Raise UsageError for impossible values (checked before any work is done)."""
    checks = [
        (recipe.epochs >= 1, f"--epochs must be at least 1 (got {recipe.epochs})"),
        (recipe.batch_size >= 1, f"--batch-size must be at least 1 (got {recipe.batch_size})"),
        (recipe.learning_rate > 0, f"--learning-rate must be positive (got {recipe.learning_rate})"),
        (0.0 < recipe.validation_split < 0.5, f"--validation-split must be in (0, 0.5) (got {recipe.validation_split})"),
        (recipe.patience >= 0, f"--patience must be >= 0 (got {recipe.patience})"),
        (recipe.augment in PRESETS, f"augmentation must be one of {', '.join(PRESETS)} (got {recipe.augment!r})"),
        (limit is None or limit >= 100, f"--limit must be at least 100 images (got {limit})"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
