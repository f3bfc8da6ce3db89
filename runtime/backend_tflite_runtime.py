"""Backend ``tflite-runtime``: the legacy TFLite interpreter package for older devices.

Its last release (2.14, 2023) needs numpy<2 and cannot load op versions written by newer converters
(for example dynamic-range FULLY_CONNECTED v12 from TF 2.21); such models give a ModelError that
says to install ai-edge-litert instead.
"""

from __future__ import annotations

from mnistkit.runtime.engine_tflite import TFLiteEngine
from mnistkit.runtime.tflite_check import check_tflite

NAME = "tflite-runtime"


def load(content: bytes, *, name: str, threads: int | None) -> TFLiteEngine:
    """Load a .tflite model from its bytes (see ``backend_litert.load``).

    tflite-runtime does not verify the flatbuffer and may crash on a damaged file, so the file's
    structure is checked first (``tflite_check``).
    """
    from tflite_runtime import interpreter as tfl

    check_tflite(content, name)

    resolver_type = getattr(tfl, "OpResolverType", None)

    def factory(no_delegates: bool):
        if resolver_type is None:  # very old wheels: no way to turn the default delegates off
            return tfl.Interpreter(model_content=content, num_threads=threads)
        resolver = (resolver_type.BUILTIN_WITHOUT_DEFAULT_DELEGATES if no_delegates
                    else resolver_type.AUTO)
        return tfl.Interpreter(model_content=content, num_threads=threads,
                               experimental_op_resolver_type=resolver)

    return TFLiteEngine(factory, backend=NAME, name=name)
