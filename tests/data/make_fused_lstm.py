"""Regenerate ``fused_lstm16.tflite``: a tiny model with the stateful UNIDIRECTIONAL_SEQUENCE_LSTM op.

Keras 3 never emits the fused op (its LSTM becomes a WHILE loop or, unrolled, plain ops); the legacy
``tf_keras`` (Keras 2) does, and that op keeps its state in variable tensors between ``invoke()``
calls. The runtime must reset them before every call; tests/test_runtime_models.py checks it with
this file. Weights are random (seed 0): only the statefulness matters. Needs TensorFlow and
``tf_keras`` (``pip install tf-keras==2.21.*``), which the project does not otherwise depend on:

    python tests/data/make_fused_lstm.py
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    import tensorflow as tf
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    inp = tf_keras.Input((28, 28), batch_size=1, name="image")
    hidden = tf_keras.layers.LSTM(16)(inp)
    out = tf_keras.layers.Dense(10, activation="softmax")(hidden)
    model = tf_keras.Model(inp, out)
    model.set_weights([w * 4.0 for w in model.get_weights()])  # sharper: state effects show clearly
    content = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    path = Path(__file__).with_name("fused_lstm16.tflite")
    path.write_bytes(content)
    print(f"wrote {path} ({len(content)} bytes)")


if __name__ == "__main__":
    main()
