"""Backend ``onnxruntime``: Microsoft's ONNX Runtime on the CPU, for .onnx files."""

from __future__ import annotations

import numpy as np

from mnistkit.runtime.engine import Engine, check_io, fixed_batch
from mnistkit.runtime.errors import ModelError, first_line
from mnistkit.runtime.quant import PIXEL_LEVELS

NAME = "onnxruntime"


class OnnxEngine(Engine):
    """Runs an .onnx model in an ``onnxruntime.InferenceSession`` (CPU provider)."""

    backend = NAME
    thread_safe = True  # InferenceSession.run is documented as thread-safe

    def __init__(self, content: bytes, *, name: str, threads: int | None):
        import onnxruntime as ort

        self._content, self._name, self._threads = content, name, threads
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only: no warnings on stderr
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        try:
            self._sess = ort.InferenceSession(content, sess_options=opts,
                                              providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            line = first_line(exc)
            raise ModelError(f"{name} is not a valid ONNX model ({line}); "
                             "re-export it or check the file is complete") from None
        try:  # a damaged name or dim_param fails to decode here (UnicodeDecodeError)
            inputs, outputs = self._sess.get_inputs(), self._sess.get_outputs()
            io = [(a.name, a.type, list(a.shape)) for a in (*inputs[:1], *outputs[:1])]
        except (UnicodeDecodeError, RuntimeError, ValueError, TypeError) as exc:
            what = "a name that is not UTF-8" if isinstance(exc, UnicodeDecodeError) \
                else f"unreadable input/output details ({first_line(exc)})"
            raise ModelError(f"{name} is damaged: {what}; re-export it or check the file is "
                             "complete") from None
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelError(f"{name} has {len(inputs)} inputs; expected one image input")
        (in_name, in_type, in_shape), (out_name, out_type, out_shape) = io
        if in_type != "tensor(float)":
            raise ModelError(f"{name} takes {in_type} inputs; expected float32 images in [0, 1]")
        self._layout = check_io(name, in_shape, out_shape)
        self._in_name, self._out_name = in_name, out_name
        self._fixed = fixed_batch(in_shape[0])
        self._out_type = out_type

    def run(self, x: np.ndarray) -> np.ndarray:
        if x.dtype == np.uint8:
            x = PIXEL_LEVELS.take(x)
        if self._fixed is not None and x.shape[0] != self._fixed:
            parts = [self.run(_pad(x[i:i + self._fixed], self._fixed))[: len(x[i:i + self._fixed])]
                     for i in range(0, x.shape[0], self._fixed)]
            return np.concatenate(parts)
        feed = {self._in_name: x.reshape(x.shape[0], *self._layout)}
        try:
            y = np.asarray(self._sess.run([self._out_name], feed)[0])
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types (Fail, InvalidArgument, ...)
            raise ModelError(f"{self._name} failed at run time ({first_line(exc)}); the file is damaged "
                             "or not an mnistkit export: re-export it") from None
        if y.size != x.shape[0] * 10:  # a damaged graph can compute another shape than it declares
            raise ModelError(f"{self._name} gave outputs of shape {y.shape} for {x.shape[0]} image(s), "
                             "not 10 scores each; the file is damaged: re-export it")
        return y.astype(np.float32, copy=False).reshape(x.shape[0], 10)

    def clone(self) -> "OnnxEngine":
        return OnnxEngine(self._content, name=self._name, threads=self._threads)

    def describe(self) -> dict:
        return {"backend": NAME, "input_dtype": "float32", "output_type": self._out_type,
                "fixed_batch": self._fixed}


def _pad(x: np.ndarray, size: int) -> np.ndarray:
    if x.shape[0] == size:
        return x
    return np.concatenate([x, np.zeros((size - x.shape[0], *x.shape[1:]), np.float32)])


def load(content: bytes, *, name: str, threads: int | None) -> OnnxEngine:
    """Load an .onnx model from its bytes (see ``backend_litert.load``)."""
    return OnnxEngine(content, name=name, threads=threads)
