"""Backend ``tensorflow``: TensorFlow's own ``tf.lite.Interpreter``, a last resort.

Used only when neither ai-edge-litert nor tflite-runtime is installed but TensorFlow happens to be,
or when asked for by name. TensorFlow is imported here, lazily, and only when this backend is
chosen: importing it costs ~3 s and ~540 MiB, so it is never the default.
"""

from __future__ import annotations

import warnings

from mnistkit.runtime.engine_tflite import TFLiteEngine

NAME = "tensorflow"


def load(content: bytes, *, name: str, threads: int | None) -> TFLiteEngine:
    """Load a .tflite model from its bytes (see ``backend_litert.load``)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    resolver_type = tf.lite.experimental.OpResolverType

    def factory(no_delegates: bool):
        resolver = (resolver_type.BUILTIN_WITHOUT_DEFAULT_DELEGATES if no_delegates
                    else resolver_type.AUTO)
        with warnings.catch_warnings():  # TF 2.21 warns that tf.lite.Interpreter is deprecated
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_content=content, num_threads=threads,
                                       experimental_op_resolver_type=resolver)

    return TFLiteEngine(factory, backend=NAME, name=name)
