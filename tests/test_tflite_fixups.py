"""Post-conversion flatbuffer passes change size and structure, never results (real converter, real runtime)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow

tf = pytest.importorskip("tensorflow")


def _ops(data: bytes) -> list[str]:
    from mnistkit.export.tflite_fixups import _load
    from tensorflow.lite.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = _load(data)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    return [names[codes[op.opcodeIndex]] for op in model.subgraphs[0].operators]


def _run(data: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    inp = interp.get_input_details()[0]["index"]
    interp.resize_tensor_input(inp, list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp, x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def test_fold_batch_reshapes_replaces_the_shape_chain_by_a_constant():
    import keras

    from mnistkit.export.tflite_fixups import fold_batch_reshapes

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(28, 28))
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden))
    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    assert {"SHAPE", "STRIDED_SLICE", "PACK"} <= set(_ops(data))  # Keras computes the batch at run time

    folded, count = fold_batch_reshapes(data)
    assert count == 1 and len(folded) < len(data)
    assert _ops(folded) == ["RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED", "SOFTMAX"]
    x = np.random.default_rng(0).random((5, 28, 28), np.float32)
    for batch in (x[:1], x):  # the batch dimension stays free
        np.testing.assert_array_equal(_run(folded, batch), _run(data, batch))
    np.testing.assert_allclose(_run(folded, x), model(x).numpy(), atol=1e-5)
    assert fold_batch_reshapes(folded) == (folded, 0)  # nothing left to fold
