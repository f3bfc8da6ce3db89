"""Checks that name the extra to install when a command needs packages a device install lacks."""

from __future__ import annotations

import importlib.util

from mnistkit.runtime.errors import MissingExtraError

TRAIN_MODULES: tuple[str, ...] = ("tensorflow", "keras")


def missing(modules: tuple[str, ...]) -> list[str]:
    """The modules of ``modules`` that cannot be imported (found without importing them)."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def require_train_stack(what: str) -> None:
    """Raise MissingExtraError naming ``pip install "mnistkit[train]"`` if TensorFlow or Keras is missing.

    Args:
        what: what needs them, for the message (e.g. "mnistkit train").
    """
    absent = missing(TRAIN_MODULES)
    if absent:
        raise MissingExtraError(
            f"{what} needs the training stack ({', '.join(absent)} not installed); "
            'install it with: pip install "mnistkit[train]"'
        )
