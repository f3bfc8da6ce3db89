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
    fc_codes = {i for i, c in enumerate(model.operatorCodes)
                if max(c.builtinCode, c.deprecatedBuiltinCode) == schema.BuiltinOperator.FULLY_CONNECTED}
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
