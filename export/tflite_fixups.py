"""Post-conversion passes over a .tflite flatbuffer that change no computation.

1. ``fix_degenerate_int8_scales``: calibration that only ever sees zeros in a tensor (the initial
   state of an unrolled RNN; an LSTM's first-step input projection, since row 0 of every MNIST
   image is blank) gives it a scale of ~1e-8. A FULLY_CONNECTED writing such a tensor then has a
   requantization ratio input_scale * filter_scale / output_scale far above 256, which XNNPACK's
   int8 fully-connected operator rejects (xnnpack/src/operators/fully-connected-nc.c); the whole
   delegate then fails at the first invoke and the model runs ~8x slower on reference kernels.
   The tensors still hold exact zeros with zero point 0, and kernels derive their multipliers from
   tensor parameters at prepare time, so giving them a sane scale changes no result.
2. ``strip_tensor_names``: drop internal tensor names and calibration min/max (debug data that is
   ~20% of an unrolled recurrent int8 file); input and output names are kept.
3. ``fold_batch_reshapes``: Keras' Flatten/Reshape compute the batch size at run time
   (SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE); a constant shape (-1, 784) says the same with one
   tensor instead of three ops, five tensors and four buffers. For the linear model that chain is a
   visible share of the int8 file.
"""

from __future__ import annotations

import numpy as np

XNNPACK_MAX_REQUANT = 256.0  # XNNPACK requires input_scale * filter_scale / output_scale < 256


def _schema():
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    return flatbuffers, schema


def _load(data: bytes):
    _, schema = _schema()
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(data), 0))


def builtin_codes(model) -> list[int]:
    """The builtin operator code of each entry of ``model.operatorCodes`` (codes above 127 live in
    ``builtinCode``, older ones in ``deprecatedBuiltinCode``)."""
    return [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]


def _dump(model, size_hint: int) -> bytes:
    flatbuffers, _ = _schema()
    builder = flatbuffers.Builder(size_hint + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def fix_degenerate_int8_scales(data: bytes, *, degenerate: float = 1e-6, zero_scale: float = 1 / 256) -> tuple[bytes, list[dict]]:
    """Give calibrated-constant-zero int8 tensors a scale XNNPACK accepts.

    A degenerate output of a FULLY_CONNECTED takes the largest acceptable output scale of the
    FULLY_CONNECTED ops sharing its weights (the same layer at other time steps), else
    input_scale * filter_scale; any other degenerate tensor takes ``zero_scale``.

    Returns:
        (new bytes, list of {tensor, old, new}); the input bytes when nothing needed fixing.
    """
    _, schema = _schema()
    model = _load(data)
    fc_codes = {i for i, c in enumerate(builtin_codes(model)) if c == schema.BuiltinOperator.FULLY_CONNECTED}
    changes: list[dict] = []
    for sg in model.subgraphs:
        tensors = sg.tensors

        def scale(t: int) -> np.ndarray | None:
            q = tensors[t].quantization
            return None if q is None or q.scale is None or len(q.scale) == 0 else np.asarray(q.scale, np.float64)

        def degenerate_tensor(t: int) -> bool:
            s = scale(t)
            return (tensors[t].type == schema.TensorType.INT8 and s is not None and len(s) == 1
                    and s[0] < degenerate and int(tensors[t].quantization.zeroPoint[0]) == 0)

        def set_scale(t: int, new: float) -> None:
            changes.append({"tensor": tensors[t].name.decode(errors="replace"), "old": float(scale(t)[0]), "new": float(new)})
            tensors[t].quantization.scale = [float(new)]

        fcs = [op for op in sg.operators if op.opcodeIndex in fc_codes and scale(op.inputs[1]) is not None]
        fc_outputs = {op.outputs[0] for op in fcs}
        for t in range(len(tensors)):
            if t not in fc_outputs and degenerate_tensor(t):
                set_scale(t, zero_scale)
        siblings: dict[int, list] = {}
        for op in fcs:
            siblings.setdefault(tensors[op.inputs[1]].buffer, []).append(op)
        bad = {op.outputs[0] for op in fcs if degenerate_tensor(op.outputs[0])}
        for op in fcs:
            out, s_in, s_w, s_out = op.outputs[0], scale(op.inputs[0]), scale(op.inputs[1]), scale(op.outputs[0])
            if s_in is None or s_out is None or tensors[out].type != schema.TensorType.INT8:
                continue
            product = s_in[0] * s_w.max()
            if out not in bad and product / s_out[0] < XNNPACK_MAX_REQUANT:
                continue
            usable = [scale(o.outputs[0])[0] for o in siblings[tensors[op.inputs[1]].buffer]
                      if o.outputs[0] not in bad and product / scale(o.outputs[0])[0] < XNNPACK_MAX_REQUANT]
            set_scale(out, max(usable, default=product))
    return (_dump(model, len(data)), changes) if changes else (data, changes)


#: Ops without side effects that may be dropped when nothing reads their outputs.
_PURE_SHAPE_OPS = ("SHAPE", "STRIDED_SLICE", "PACK", "CONCATENATION", "GATHER", "SLICE")


def fold_batch_reshapes(data: bytes) -> tuple[bytes, int]:
    """Give every RESHAPE with a computed shape whose output is (batch, static dims...) the constant
    shape (-1, dims...), then drop the shape computation nobody reads any more.

    Returns:
        (new bytes, number of reshapes folded); the input bytes when there was none.
    """
    _, schema = _schema()
    model = _load(data)
    codes = builtin_codes(model)
    reshape = schema.BuiltinOperator.RESHAPE
    folded = 0
    for sg in model.subgraphs:
        for op in sg.operators:
            if codes[op.opcodeIndex] != reshape or len(op.inputs) < 2:
                continue
            shape_buffer = model.buffers[sg.tensors[op.inputs[1]].buffer]
            out = sg.tensors[op.outputs[0]]
            dims = list(out.shapeSignature if out.shapeSignature is not None else out.shape)
            if (shape_buffer.data is not None and len(shape_buffer.data)) or len(dims) < 2 \
                    or any(d <= 0 for d in dims[1:]):
                continue
            buffer = schema.BufferT()
            buffer.data = np.array([-1, *dims[1:]], np.int32).view(np.uint8)
            model.buffers.append(buffer)
            tensor = schema.TensorT()
            tensor.shape, tensor.type, tensor.buffer, tensor.name = [len(dims)], schema.TensorType.INT32, len(model.buffers) - 1, b""
            sg.tensors.append(tensor)
            op.inputs[1] = len(sg.tensors) - 1
            folded += 1
        if folded:
            names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
            pure = {i for i, c in enumerate(codes) if names.get(c) in _PURE_SHAPE_OPS}
            _drop_dead_ops(sg, pure)
    if not folded:
        return data, 0
    drop_unused_tensors_and_buffers(model)
    return _dump(model, len(data)), folded


def _drop_dead_ops(sg, pure_codes: set[int]) -> None:
    """Remove side-effect-free ops whose outputs nobody reads, until none is left."""
    while True:
        read = set(sg.outputs) | {i for op in sg.operators for i in op.inputs}
        dead = [op for op in sg.operators if op.opcodeIndex in pure_codes and not read & set(op.outputs)]
        if not dead:
            return
        sg.operators = [op for op in sg.operators if op not in dead]


def drop_unused_tensors_and_buffers(model) -> None:
    """Remove tensors no op or subgraph I/O refers to, then unreferenced buffers; renumber all
    references (ops, subgraph I/O, signature defs, metadata)."""
    remaps = []
    for sg in model.subgraphs:
        used = sorted({i for op in sg.operators for i in (*op.inputs, *op.outputs, *(op.intermediates or []))
                       if i >= 0} | set(sg.inputs) | set(sg.outputs))
        remap = {old: new for new, old in enumerate(used)}
        remaps.append(remap)
        sg.tensors = [sg.tensors[i] for i in used]
        for op in sg.operators:
            op.inputs = [remap[i] if i >= 0 else i for i in op.inputs]
            op.outputs = [remap[i] for i in op.outputs]
            if op.intermediates is not None:
                op.intermediates = [remap[i] for i in op.intermediates]
        sg.inputs, sg.outputs = [remap[i] for i in sg.inputs], [remap[i] for i in sg.outputs]
    for sig in model.signatureDefs or []:
        for io in (*(sig.inputs or []), *(sig.outputs or [])):
            io.tensorIndex = remaps[sig.subgraphIndex][io.tensorIndex]
    keep = sorted({0} | {t.buffer for sg in model.subgraphs for t in sg.tensors}
                  | {m.buffer for m in model.metadata or []})
    renumber = {old: new for new, old in enumerate(keep)}
    model.buffers = [model.buffers[i] for i in keep]
    for sg in model.subgraphs:
        for t in sg.tensors:
            t.buffer = renumber[t.buffer]
    for m in model.metadata or []:
        m.buffer = renumber[m.buffer]


def strip_tensor_names(data: bytes) -> bytes:
    """Drop internal tensor names and quantization min/max; keep input/output names."""
    model = _load(data)
    for sg in model.subgraphs:
        keep = set(sg.inputs) | set(sg.outputs)
        for i, tensor in enumerate(sg.tensors):
            if i not in keep:
                tensor.name = b""
            if tensor.quantization is not None:
                tensor.quantization.min = None
                tensor.quantization.max = None
    return _dump(model, len(data))
