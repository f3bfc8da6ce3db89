"""Write the PLACEHOLDER bundled model runtime/assets/default.tflite (+ manifest).

A tiny MLP trained for one epoch on 10,000 MNIST images and converted to full int8 (int8 I/O), so
``mnistkit classify`` works before the real pretrained model is bundled. The lead replaces both
files with the best full-int8 export (and its export manifest). Needs TensorFlow:

    MNISTKIT_DATA=/path/to/mnist python tests/data/make_placeholder_default.py
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
OUT = Path(__file__).resolve().parents[2] / "runtime" / "assets" / "default.tflite"


def main() -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    from mnistkit.models import zoo
    from mnistkit.models.artifacts import tool_versions, write_bytes_atomic, write_json_atomic
    from mnistkit.models.data import load_mnist, to_float

    keras.utils.set_random_seed(0)
    mn = load_mnist(os.environ.get("MNISTKIT_DATA"))
    x, y = to_float(mn.x_train[:10000]), mn.y_train[:10000]
    model = zoo.build("mlp")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[i:i + 1]] for i in range(200))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    content = conv.convert()
    write_bytes_atomic(OUT, content)

    from mnistkit.runtime import Classifier

    xt, yt = to_float(mn.x_test), mn.y_test
    keras_pred = model.predict(xt, batch_size=1000, verbose=0).argmax(1)
    tfl_pred = Classifier.load(OUT).predict_proba(xt).argmax(1)
    manifest = {
        "placeholder": True,
        "note": "PLACEHOLDER: mlp trained 1 epoch on 10k images; replace with the best full-int8 export",
        "artifact": {"file": OUT.name, "sha256": hashlib.sha256(content).hexdigest(),
                     "size_bytes": len(content)},
        "format": "tflite", "mode": "int8", "model": "mlp",
        "source": {"file": None, "sha256": None, "training": "1 epoch, first 10,000 train images, seed 0"},
        "input": {"shape": [None, 28, 28], "dtype": "int8"},
        "output": {"shape": [None, 10], "dtype": "int8"},
        "ops": {}, "calibration": {"samples": 200, "source": "first 200 train images"},
        "versions": tool_versions("tensorflow", "keras", "numpy", "ai-edge-litert"),
        "parity": {"test_images": int(len(yt)),
                   "keras_accuracy": float((keras_pred == yt).mean()),
                   "accuracy": float((tfl_pred == yt).mean()),
                   "top1_agreement": float((tfl_pred == keras_pred).mean())},
    }
    write_json_atomic(OUT.with_name(OUT.name + ".json"), manifest)
    print(json.dumps(manifest["parity"]))


if __name__ == "__main__":
    main()
