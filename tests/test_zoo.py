"""Every zoo builder: output shape, softmax output, parameter count from the architecture's formula."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from mnistkit.models import zoo  # noqa: E402
from mnistkit.runtime.errors import UsageError  # noqa: E402


def dense(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def recurrent(n_in: int, units: int, gates: int) -> int:
    return gates * (n_in * units + units * units + units)


def conv(k: int, c_in: int, c_out: int) -> int:
    return k * k * c_in * c_out + c_out


EXPECTED_PARAMS = {
    "linear": dense(784, 10),
    "mlp": dense(784, 128) + dense(128, 64) + dense(64, 10),
    "rnn": recurrent(28, 128, 1) + dense(128, 10),
    "lstm": recurrent(28, 128, 4) + dense(128, 10),
    "bilstm": 2 * recurrent(28, 128, 4) + dense(256, 10),
    # 28 -> 26 -> 24 -> pool 12 -> 10 -> 8 -> pool 4: 4*4*64 features
    "cnn": conv(3, 1, 32) + conv(3, 32, 32) + conv(3, 32, 64) + conv(3, 64, 64) + dense(4 * 4 * 64, 10),
}


@pytest.mark.parametrize("name", zoo.MODEL_NAMES)
def test_builder_shape_and_params(name):
    model = zoo.build(name, dropout=0.2)
    assert model.name == name
    assert model.count_params() == EXPECTED_PARAMS[name]
    x = np.random.default_rng(0).random((3, 28, 28), dtype=np.float32)
    probs = np.asarray(model(x))
    assert probs.shape == (3, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_cnn_is_small():
    assert zoo.build("cnn").count_params() < 100_000


def test_every_model_is_functional():
    for name in zoo.MODEL_NAMES:
        assert not isinstance(zoo.build(name), keras.Sequential)


@pytest.mark.parametrize("name", sorted(zoo.RECURRENT))
def test_unrolled_clone_is_identical(name):
    model = zoo.build(name, dropout=0.2)
    x = np.random.default_rng(1).random((4, 28, 28), dtype=np.float32)
    clone = zoo.unrolled_clone(model)
    assert clone is not model
    np.testing.assert_allclose(np.asarray(clone(x)), np.asarray(model(x)), atol=1e-6)


def test_unknown_model_name():
    with pytest.raises(UsageError, match="unknown model 'resnet'; choose one of: linear, mlp"):
        zoo.build("resnet")
