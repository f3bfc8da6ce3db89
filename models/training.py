"""Train a zoo model with its recipe: seeded, early-stopped, interruptible (Ctrl-C keeps the best epoch)."""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass, field

import keras
import numpy as np

from mnistkit.models import zoo
from mnistkit.models.augment import seeded_batches
from mnistkit.models.data import Mnist, to_float
from mnistkit.models.recipes import Recipe, validate_recipe
from mnistkit.runtime.errors import MnistkitError


class TrainingInterrupted(MnistkitError):
    """Ctrl-C arrived before any epoch finished: there is nothing worth keeping."""


@dataclass
class TrainResult:
    """What a finished (or interrupted) training run produced."""

    model: object  # keras.Model without optimizer state
    recipe: Recipe
    history: dict[str, list[float]]
    best_epoch: int
    epochs_run: int
    seconds: float
    interrupted: bool
    train_count: int
    test_probabilities: np.ndarray = field(repr=False, default=None)


def validation_count(total: int, recipe: Recipe) -> int:
    """How many of ``total`` training images ``recipe`` holds out for validation."""
    return max(1, int(round(total * recipe.validation_split)))


def _split(mnist: Mnist, recipe: Recipe, limit: int | None):
    rng = np.random.default_rng(recipe.seed)
    order = rng.permutation(len(mnist.x_train))
    if limit:
        order = order[:limit]
    n_val = validation_count(len(order), recipe)
    val, train = order[:n_val], order[n_val:]
    x = to_float(mnist.x_train)
    return (x[train], mnist.y_train[train]), (x[val], mnist.y_train[val])


def train(name: str, mnist: Mnist, recipe: Recipe, limit: int | None = None, verbose: int = 1,
          callbacks: list | None = None) -> TrainResult:
    """Train zoo model ``name`` on ``mnist`` with ``recipe`` and evaluate it on the test set.

    Args:
        name: zoo model name.
        mnist: loaded data.
        recipe: hyper-parameters, seed included.
        limit: use only this many (seeded, random) training images.
        verbose: Keras fit verbosity (0 = silent, 1 = progress bar, 2 = one line per epoch).
        callbacks: extra Keras callbacks (e.g. a progress display).

    Returns:
        The trained model (best validation epoch) and its history. On Ctrl-C after at least one
        epoch, the best epoch so far with ``interrupted=True``.

    Raises:
        UsageError: impossible recipe values.
        TrainingInterrupted: Ctrl-C before the first epoch finished.
    """
    import tensorflow as tf

    zoo.check_name(name)
    validate_recipe(recipe, limit)
    keras.utils.set_random_seed(recipe.seed)
    tf.config.experimental.enable_op_determinism()

    (x_train, y_train), (x_val, y_val) = _split(mnist, recipe, limit)
    model = zoo.build(name, dropout=recipe.dropout)
    steps = int(np.ceil(len(x_train) / recipe.batch_size)) * recipe.epochs
    schedule = keras.optimizers.schedules.CosineDecay(recipe.learning_rate, decay_steps=steps, alpha=0.01)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, clipnorm=recipe.clipnorm),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    best, stop = _BestWeights(), _StopOnCtrlC()
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=recipe.patience, restore_best_weights=False)
    start = time.perf_counter()
    interrupted = False
    if recipe.augment_shift or recipe.augmentation.enabled:
        batches = seeded_batches(x_train, y_train, recipe.batch_size, recipe.seed, recipe.augmentation, recipe.augment_shift)
        data = {"x": batches, "shuffle": False}  # shuffled by the dataset
    else:
        data = {"x": x_train, "y": y_train, "batch_size": recipe.batch_size, "shuffle": True}
    try:
        with stop.armed():
            model.fit(**data, validation_data=(x_val, y_val), epochs=recipe.epochs,
                      callbacks=[best, stopper, stop, *(callbacks or [])], verbose=verbose)
        interrupted = stop.requested
    except KeyboardInterrupt:  # a second Ctrl-C: stop now
        interrupted = True
    if interrupted and best.weights is None:
        raise TrainingInterrupted("interrupted before the first epoch finished; nothing was written")
    seconds = time.perf_counter() - start
    clean = zoo.build(name, dropout=recipe.dropout)  # a fresh model: no optimizer state in the saved file
    clean.set_weights(best.weights)
    probs = clean.predict(to_float(mnist.x_test), batch_size=1000, verbose=0)
    return TrainResult(
        model=clean, recipe=recipe, history=best.history, best_epoch=best.epoch, epochs_run=len(best.history.get("loss", [])),
        seconds=seconds, interrupted=interrupted, train_count=len(x_train), test_probabilities=probs,
    )


class _StopOnCtrlC(keras.callbacks.Callback):
    """First Ctrl-C: finish the current batch, validate, and end training cleanly.

    Raising KeyboardInterrupt inside ``fit`` can abort the process (SIGABRT) when it lands while a
    tf.data pipeline is running; stopping at a batch boundary keeps the best checkpoint safe. A
    second Ctrl-C raises KeyboardInterrupt as usual.
    """

    def __init__(self) -> None:
        super().__init__()
        self.requested = False

    @contextlib.contextmanager
    def armed(self):
        def handler(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True

        try:
            previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: leave Ctrl-C alone
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.requested:
            self.model.stop_training = True


class _BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the lowest validation loss, and the history so far."""

    def __init__(self) -> None:
        super().__init__()
        self.weights = None
        self.epoch = 0
        self.best = np.inf
        self.history: dict[str, list[float]] = {}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        for key, value in logs.items():
            if key != "learning_rate":
                self.history.setdefault(key, []).append(float(value))
        if logs.get("val_loss", np.inf) < self.best:
            self.best = float(logs["val_loss"])
            self.epoch = epoch + 1
            self.weights = self.model.get_weights()
