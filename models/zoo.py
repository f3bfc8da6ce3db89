"""The model zoo: a registry from model name to a Functional-API Keras builder.

Every model takes float32 images of shape (28, 28) in [0, 1] and returns softmax probabilities over
the 10 digits. Builders are Functional (tf2onnx fails on Sequential models). Recurrent builders take
``unroll`` so the exporters can rebuild a numerically identical clone with plain ops.
"""

from __future__ import annotations

from typing import Any, Callable

from mnistkit.runtime.errors import UsageError

MODEL_NAMES: tuple[str, ...] = ("linear", "mlp", "rnn", "lstm", "bilstm", "cnn")
RECURRENT: frozenset[str] = frozenset({"rnn", "lstm", "bilstm"})

_BUILDERS: dict[str, Callable[..., Any]] = {}


def register(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator adding a builder to the zoo under ``name``."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        _BUILDERS[name] = fn
        return fn

    return wrap


def check_name(name: str) -> str:
    """Return ``name`` if it is a zoo model, else raise UsageError listing the choices."""
    if name not in MODEL_NAMES:
        raise UsageError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    return name


def build(name: str, *, dropout: float = 0.0, unroll: bool = False, batch_size: int | None = None):
    """Build zoo model ``name``.

    Args:
        name: one of MODEL_NAMES.
        dropout: dropout rate where the architecture uses it (no effect at inference).
        unroll: unroll recurrent layers into plain ops (used by exporters).
        batch_size: fix the batch dimension (None keeps it free).

    Returns:
        An uncompiled ``keras.Model`` named ``name``.
    """
    import keras

    check_name(name)
    inputs = keras.Input(shape=(28, 28), batch_size=batch_size, name="image")
    outputs = _BUILDERS[name](keras, inputs, dropout=dropout, unroll=unroll)
    return keras.Model(inputs, outputs, name=name)


def _head(keras, x, dropout: float):
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    return keras.layers.Dense(10, activation="softmax", name="probabilities")(x)


@register("linear")
def _linear(keras, x, dropout: float, unroll: bool):
    return keras.layers.Dense(10, activation="softmax", name="probabilities")(keras.layers.Flatten()(x))


@register("mlp")
def _mlp(keras, x, dropout: float, unroll: bool):
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    return _head(keras, x, dropout)


@register("rnn")
def _rnn(keras, x, dropout: float, unroll: bool):
    return _head(keras, keras.layers.SimpleRNN(128, unroll=unroll)(x), dropout)


@register("lstm")
def _lstm(keras, x, dropout: float, unroll: bool):
    return _head(keras, keras.layers.LSTM(128, unroll=unroll)(x), dropout)


@register("bilstm")
def _bilstm(keras, x, dropout: float, unroll: bool):
    return _head(keras, keras.layers.Bidirectional(keras.layers.LSTM(128, unroll=unroll))(x), dropout)


@register("cnn")
def _cnn(keras, x, dropout: float, unroll: bool):
    L = keras.layers
    x = L.Reshape((28, 28, 1))(x)
    x = L.Conv2D(32, 3, activation="relu")(x)
    x = L.Conv2D(32, 3, activation="relu")(x)
    x = L.MaxPooling2D()(x)
    x = L.Conv2D(64, 3, activation="relu")(x)
    x = L.Conv2D(64, 3, activation="relu")(x)
    x = L.MaxPooling2D()(x)
    x = L.Flatten()(x)
    return _head(keras, x, dropout)


def unrolled_clone(model):
    """Return a clone of a zoo model with recurrent layers unrolled and the same weights.

    The clone is numerically identical in Keras and converts to plain TFLite/ONNX ops with a free
    batch dimension. Non-recurrent models are returned unchanged.
    """
    name = model.name
    if name not in RECURRENT:
        return model
    dropout = next((l.rate for l in model.layers if l.__class__.__name__ == "Dropout"), 0.0)
    clone = build(name, dropout=dropout, unroll=True)
    clone.set_weights(model.get_weights())
    return clone
