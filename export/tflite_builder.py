"""A small writer of TFLite flatbuffers: tensors with quantization, builtin ops, several subgraphs.

The recurrent int8 graph (export/recurrent_int8.py) is written with it directly from trained
weights and calibrated ranges, so every tensor's type and scale is chosen, not inferred by the
converter's quantizer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mnistkit.export.tflite_fixups import _schema

_DTYPES = {
    np.dtype(np.float32): "FLOAT32",
    np.dtype(np.int8): "INT8",
    np.dtype(np.int16): "INT16",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
    np.dtype(np.bool_): "BOOL",
}


class Subgraph:
    """One subgraph under construction: add tensors and ops, then set ``inputs`` and ``outputs``."""

    def __init__(self, builder: "GraphBuilder", name: str) -> None:
        _, schema = _schema()
        self._b = builder
        self.sg = schema.SubGraphT()
        self.sg.name = name.encode()
        self.sg.tensors, self.sg.operators, self.sg.inputs, self.sg.outputs = [], [], [], []

    @property
    def inputs(self) -> list[int]:
        return self.sg.inputs

    @inputs.setter
    def inputs(self, value: list[int]) -> None:
        self.sg.inputs = list(value)

    @property
    def outputs(self) -> list[int]:
        return self.sg.outputs

    @outputs.setter
    def outputs(self, value: list[int]) -> None:
        self.sg.outputs = list(value)

    def tensor(self, name: str, shape: list[int], dtype, scale: float | list[float] | None = None,
               zero_point: int | list[int] = 0, data: np.ndarray | None = None, axis: int = 0) -> int:
        """Add a tensor (``-1`` in ``shape`` marks the free batch dimension); return its index."""
        _, schema = _schema()
        t = schema.TensorT()
        t.name = name.encode()
        t.type = getattr(schema.TensorType, _DTYPES[np.dtype(dtype)])
        t.shape = [max(int(d), 1) for d in shape]
        if any(d < 0 for d in shape):
            t.shapeSignature = [int(d) for d in shape]
        t.buffer = 0
        if data is not None:
            buf = schema.BufferT()
            buf.data = np.ascontiguousarray(data, dtype=np.dtype(dtype).newbyteorder("<")).view(np.uint8).ravel()
            self._b.model.buffers.append(buf)
            t.buffer = len(self._b.model.buffers) - 1
        if scale is not None:
            q = schema.QuantizationParametersT()
            scales = np.atleast_1d(np.asarray(scale, np.float64))
            q.scale = [float(s) for s in scales]
            zps = np.broadcast_to(np.asarray(zero_point, np.int64), scales.shape)
            q.zeroPoint = [int(z) for z in zps]
            q.quantizedDimension = axis
            t.quantization = q
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def const(self, name: str, array: np.ndarray, scale=None, zero_point=0, axis: int = 0) -> int:
        """Add a constant tensor holding ``array`` (its dtype is the tensor's)."""
        array = np.asarray(array)
        return self.tensor(name, list(array.shape), array.dtype, scale, zero_point, data=array, axis=axis)

    def like(self, name: str, index: int, src: "Subgraph | None" = None) -> int:
        """Add a tensor with the type, shape and quantization of tensor ``index`` of ``src`` (default:
        this subgraph), e.g. a WHILE body's copy of a loop variable."""
        t = (src or self).sg.tensors[index]
        shape = list(t.shapeSignature if t.shapeSignature is not None else t.shape)
        dtype = {v: k for k, v in _DTYPES.items()}[_type_name(t.type)]
        q = t.quantization
        return self.tensor(name, shape, dtype, None if q is None else list(q.scale),
                           0 if q is None else list(q.zeroPoint))

    def op(self, kind: str, inputs: list[int], outputs: list[int], options: Any = None) -> None:
        """Append builtin op ``kind`` (e.g. "FULLY_CONNECTED"); ``options`` is an ``<Kind>OptionsT``."""
        _, schema = _schema()
        op = schema.OperatorT()
        op.opcodeIndex = self._b.code(kind)
        op.inputs, op.outputs = list(inputs), list(outputs)
        if options is not None:
            op.builtinOptionsType = getattr(schema.BuiltinOptions, type(options).__name__[:-1])
            op.builtinOptions = options
        self.sg.operators.append(op)


def _type_name(code: int) -> str:
    _, schema = _schema()
    return next(k for k, v in vars(schema.TensorType).items() if v == code)


class GraphBuilder:
    """A TFLite model under construction. ``subgraph()`` first is the main graph."""

    def __init__(self, description: str = "mnistkit") -> None:
        _, schema = _schema()
        self.model = schema.ModelT()
        self.model.version = 3
        self.model.description = description.encode()
        self.model.buffers = [schema.BufferT()]  # buffer 0: the empty sentinel
        self.model.operatorCodes, self.model.subgraphs = [], []
        self._codes: dict[str, int] = {}

    def subgraph(self, name: str) -> Subgraph:
        """Add a subgraph; its index is its position (0 = main)."""
        sub = Subgraph(self, name)
        self.model.subgraphs.append(sub.sg)
        return sub

    def code(self, kind: str) -> int:
        """Index of builtin operator ``kind`` in the model's operator codes (added on first use)."""
        _, schema = _schema()
        if kind not in self._codes:
            builtin = getattr(schema.BuiltinOperator, kind)
            code = schema.OperatorCodeT()
            code.builtinCode = builtin
            code.deprecatedBuiltinCode = min(builtin, 127)
            code.version = 1
            self.model.operatorCodes.append(code)
            self._codes[kind] = len(self.model.operatorCodes) - 1
        return self._codes[kind]

    def signature(self, inputs: dict[str, int], outputs: dict[str, int], key: str = "serving_default") -> None:
        """Name the main graph's inputs and outputs in a signature (what interpreters list)."""
        _, schema = _schema()
        sig = schema.SignatureDefT()
        sig.signatureKey = key.encode()
        sig.subgraphIndex = 0
        sig.inputs, sig.outputs = [], []
        for dst, items in ((sig.inputs, inputs), (sig.outputs, outputs)):
            for name, index in items.items():
                tm = schema.TensorMapT()
                tm.name, tm.tensorIndex = name.encode(), index
                dst.append(tm)
        self.model.signatureDefs = [sig]

    def finish(self) -> bytes:
        """Serialize the model."""
        import flatbuffers

        builder = flatbuffers.Builder(1 << 16)
        builder.Finish(self.model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def options(kind: str, **fields: Any) -> Any:
    """An ``<kind>OptionsT`` object with ``fields`` set, e.g. ``options("Add", potScaleInt16=False)``."""
    _, schema = _schema()
    opts = getattr(schema, f"{kind}OptionsT")()
    for k, v in fields.items():
        setattr(opts, k, v)
    return opts
