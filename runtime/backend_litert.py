"""Backend ``litert``: Google's ai-edge-litert interpreter, the default for .tflite files."""

from __future__ import annotations

from mnistkit.runtime.engine_tflite import TFLiteEngine

NAME = "litert"


def load(content: bytes, *, name: str, threads: int | None) -> TFLiteEngine:
    """Load a .tflite model from its bytes.

    Args:
        content: the model file's bytes.
        name: file name, for messages.
        threads: CPU threads for the interpreter (None: the backend's default).

    Returns:
        A ready engine.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    def factory(no_delegates: bool):
        resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if no_delegates else OpResolverType.AUTO
        return Interpreter(model_content=content, num_threads=threads,
                           experimental_op_resolver_type=resolver)

    return TFLiteEngine(factory, backend=NAME, name=name)
