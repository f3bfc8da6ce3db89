"""Training progress for a person: a bar within each epoch at a terminal, one line per epoch otherwise."""

from __future__ import annotations

import time
from typing import TextIO

import keras


class EpochProgress(keras.callbacks.Callback):
    """Keras callback: a tqdm bar per epoch (images/s, loss, accuracy, ETA), then one summary line.

    When ``stream`` is not a terminal, only the summary line is written, once per epoch.
    """

    def __init__(self, images_per_epoch: int, batch_size: int, epochs: int, stream: TextIO, bar: bool | None = None):
        super().__init__()
        self.images, self.batch_size, self.epochs, self.stream = images_per_epoch, batch_size, epochs, stream
        self.bar_enabled = stream.isatty() if bar is None else bar
        self._bar = None
        self._seen = 0
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._seen, self._start = 0, time.perf_counter()
        if self.bar_enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.images, unit="img", file=self.stream, leave=False, dynamic_ncols=True,
                desc=f"epoch {epoch + 1}/{self.epochs}",
                bar_format="{desc} {bar} {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]",
            )

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        step = min(self.batch_size, self.images - self._seen)
        self._seen += step
        if self._bar is not None:
            logs = logs or {}
            self._bar.set_postfix_str(_metrics(logs), refresh=False)
            self._bar.update(step)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        seconds = time.perf_counter() - self._start
        rate = self._seen / seconds if seconds > 0 else 0.0
        self.stream.write(f"epoch {epoch + 1}/{self.epochs}: {_metrics(logs or {}, validation=True)}"
                          f"  ({seconds:.0f} s, {rate:,.0f} img/s)\n")
        self.stream.flush()


def _metrics(logs: dict, validation: bool = False) -> str:
    parts = [f"loss {logs['loss']:.4f}"] if "loss" in logs else []
    if "accuracy" in logs:
        parts.append(f"accuracy {logs['accuracy']:.2%}")
    if validation and "val_loss" in logs:
        parts.append(f"val_loss {logs['val_loss']:.4f}")
    if validation and "val_accuracy" in logs:
        parts.append(f"val_accuracy {logs['val_accuracy']:.2%}")
    return "  ".join(parts)
