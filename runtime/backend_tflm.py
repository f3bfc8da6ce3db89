"""Backend ``tflm``: the TensorFlow Lite Micro interpreter (PyPI ``tflite-micro``).

It runs TFLM's reference kernels, the code a microcontroller runs, so answers here are the answers
a board gives. TFLM cannot resize tensors: models exported with ``--format tflm`` have a batch of 1
and a batch of images runs one image per invoke. Never picked automatically (it is slow: reference
kernels); ask for it with ``backend="tflm"`` / ``--backend tflm``.
"""

from __future__ import annotations

import numpy as np

from mnistkit.runtime.engine import Engine, check_io, io_description
from mnistkit.runtime.errors import ModelError, first_line
from mnistkit.runtime.quant import Dequantizer, PixelConverter, Quantizer

NAME = "tflm"

#: Arena tried first (bytes); doubled up to _MAX_ARENA while the model does not fit.
_ARENA = 1 << 20
_MAX_ARENA = 64 << 20
#: Operators that keep state between invokes (reset before each image).
_STATEFUL = frozenset({"UNIDIRECTIONAL_SEQUENCE_LSTM", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE",
                       "CALL_ONCE"})


def load(content: bytes, *, name: str, threads: int | None) -> "TFLMEngine":
    """Load a .tflite model from its bytes into a TFLM interpreter (``threads`` is ignored: TFLM
    is single-threaded)."""
    return TFLMEngine(content, name=name)


def _qparams(detail: dict) -> tuple[float, int] | None:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return None
    q = detail.get("quantization_parameters") or {}
    scales, zeros = q.get("scales"), q.get("zero_points")
    if scales is None or not len(scales):
        raise ModelError(f"the model's {dtype.name} input/output has no quantization parameters; re-export it")
    return float(scales[0]), int(zeros[0]) if zeros is not None and len(zeros) else 0


def _operators(content: bytes) -> set[str]:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(content, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return {names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "") for c in model.operatorCodes or []}


class TFLMEngine(Engine):
    """Runs a batch-1 .tflite model on the TFLM interpreter, one image per invoke."""

    backend = NAME

    def __init__(self, content: bytes, *, name: str, arena: int | None = None):
        """Build the interpreter.

        Raises:
            ModelError: not a model TFLM can run (unknown operator, dynamic shapes, corrupt file).
        """
        self._content, self._name = content, name
        self._interp, self.arena = self._build(arena)
        inp, out = self._interp.get_input_details(0), self._interp.get_output_details(0)
        in_shape, out_shape = [int(d) for d in inp["shape"]], [int(d) for d in out["shape"]]
        self._layout = check_io(name, in_shape, out_shape)
        if in_shape[0] != 1:
            raise ModelError(f"{name} has a batch of {in_shape[0]}; TFLM runs batch-1 models: "
                             "export with `mnistkit export SOURCE --format tflm`")
        self._in_shape = tuple(in_shape)
        self._in_dtype, self._out_dtype = np.dtype(inp["dtype"]), np.dtype(out["dtype"])
        self._in_q, self._out_q = _qparams(inp), _qparams(out)
        self._quantize = Quantizer(*self._in_q, self._in_dtype) if self._in_q else None
        self._dequantize = Dequantizer(*self._out_q, self._out_dtype) if self._out_q else None
        self._from_pixels = PixelConverter(self._quantize)
        self._stateful = bool(_operators(content) & _STATEFUL)

    def _build(self, arena: int | None):
        from tflite_micro.python.tflite_micro import runtime

        size = arena or _ARENA
        while True:
            try:
                return runtime.Interpreter.from_bytes(self._content, arena_size=size), size
            except (RuntimeError, ValueError) as exc:
                if arena is None and size < _MAX_ARENA and "allocate" in str(exc):
                    size *= 2
                    continue
                raise ModelError(f"tflm cannot run {self._name}: {first_line(exc)}; export it with "
                                 "`mnistkit export SOURCE --format tflm`") from None

    def run(self, x: np.ndarray) -> np.ndarray:
        if x.dtype == np.uint8:
            x = self._from_pixels(x)
        elif self._quantize is not None:
            x = self._quantize(x)
        x = x.reshape(x.shape[0], *self._in_shape[1:])
        out = np.empty((x.shape[0], 10), np.float32)
        interp = self._interp
        for i in range(x.shape[0]):
            if self._stateful:
                interp.reset()
            interp.set_input(x[i:i + 1], 0)
            try:
                interp.invoke()
            except RuntimeError as exc:
                raise ModelError(f"tflm failed to run {self._name}: {first_line(exc)}") from None
            y = interp.get_output(0).reshape(10)
            out[i] = self._dequantize(y) if self._dequantize is not None else y
        return out

    def clone(self) -> "TFLMEngine":
        return TFLMEngine(self._content, name=self._name, arena=self.arena)

    def describe(self) -> dict:
        return io_description(self.backend, self._in_dtype, self._out_dtype, self._in_q, self._out_q) | {
            "arena_bytes": self.arena,
            "stateful": self._stateful,
            "fixed_batch": 1,
        }
