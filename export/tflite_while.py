"""Flatbuffer passes for full-int8 TFLite graphs with a WHILE loop (export/recurrent_loop.py).

1. TF issue #75140: the int8 calibrator segfaults on a WHILE whose body passes a float loop variable
   through unchanged (here the precomputed input projection). Since TF 2.14 the WHILE kernel frees
   such an output; the calibrator had listed it for min/max logging and reads a null pointer
   (MinMax::Update in LoggingEval). ``install_calibration_fix`` makes the calibrator see a model in
   which ``break_passthrough`` routed each such output through a RESHAPE copy;
   ``restore_passthrough`` removes the copies from the converted model, so the shipped loop does not
   copy the invariant every iteration.
2. ``int8_carry``: the MLIR quantizer quantizes the ops inside the loop body but keeps the loop
   variables float: a QUANTIZE on entry and a DEQUANTIZE on exit each iteration, including a full
   requantization of the (28, N, units) projection. Carrying them in int8 instead halves the int8
   LSTM's latency (98.8 -> 47 us measured).
"""

from __future__ import annotations

import numpy as np

from mnistkit.export.tflite_fixups import _dump, _load, _schema, builtin_codes, drop_unused_tensors_and_buffers
from mnistkit.runtime.errors import ExportError

MARK = b"passthrough_copy"  # name of the RESHAPE copies (removed again after conversion)


def _code_index(model, builtin: int) -> int:
    _, schema = _schema()
    codes = builtin_codes(model)
    if builtin in codes:
        return codes.index(builtin)
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _while_bodies(model) -> set[int]:
    _, schema = _schema()
    codes = builtin_codes(model)
    return {op.builtinOptions.bodySubgraphIndex for sg in model.subgraphs for op in sg.operators
            if codes[op.opcodeIndex] == schema.BuiltinOperator.WHILE}


def break_passthrough(data: bytes) -> tuple[bytes, int]:
    """Insert RESHAPE(x, own shape) for every float pass-through of a WHILE body."""
    _, schema = _schema()
    model = _load(data)
    reshape = _code_index(model, schema.BuiltinOperator.RESHAPE)
    n = 0
    for b in _while_bodies(model):
        sg = model.subgraphs[b]
        for k, (i, o) in enumerate(zip(list(sg.inputs), list(sg.outputs))):
            t = sg.tensors[i]
            if i != o or t.type != schema.TensorType.FLOAT32:
                continue
            dims = list(t.shapeSignature if t.shapeSignature is not None else t.shape)
            buf = schema.BufferT()
            buf.data = np.array(dims, np.int32).view(np.uint8)
            model.buffers.append(buf)
            shape_t = schema.TensorT()
            shape_t.shape, shape_t.type, shape_t.buffer, shape_t.name = [len(dims)], schema.TensorType.INT32, len(model.buffers) - 1, b"pt_shape"
            sg.tensors.append(shape_t)
            out = schema.TensorT()
            out.shape, out.shapeSignature, out.type = list(t.shape), t.shapeSignature, t.type
            out.buffer, out.name = 0, MARK
            # an empty buffer index: use a fresh empty buffer (buffer 0 is the sentinel)
            sg.tensors.append(out)
            op = schema.OperatorT()
            op.opcodeIndex = reshape
            op.inputs = [i, len(sg.tensors) - 2]
            op.outputs = [len(sg.tensors) - 1]
            sg.operators.append(op)
            sg.outputs[k] = len(sg.tensors) - 1
            n += 1
    return (_dump(model, len(data)), n) if n else (data, 0)


def restore_passthrough(data: bytes) -> tuple[bytes, int]:
    """Remove the RESHAPE copies inserted by ``break_passthrough`` (matched as a body output that is
    a RESHAPE of the body input at the same position)."""
    _, schema = _schema()
    model = _load(data)
    codes = builtin_codes(model)
    n = 0
    for b in _while_bodies(model):
        sg = model.subgraphs[b]
        producer = {o: op for op in sg.operators for o in op.outputs}
        for k, (i, o) in enumerate(zip(list(sg.inputs), list(sg.outputs))):
            op = producer.get(o)
            if op is None or codes[op.opcodeIndex] != schema.BuiltinOperator.RESHAPE or op.inputs[0] != i:
                continue
            if sum(o in x.inputs for x in sg.operators) or list(sg.outputs).count(o) > 1:
                continue
            ti, to = sg.tensors[i], sg.tensors[o]
            if ti.type != to.type:
                continue
            qi, qo = ti.quantization, to.quantization
            if qi is not None and qi.scale is not None and len(qi.scale):
                if qo is None or not np.allclose(qi.scale, qo.scale) or list(qi.zeroPoint) != list(qo.zeroPoint):
                    raise ExportError(f"the calibration copy of WHILE loop variable {k} changed its quantization "
                                      f"({qi.scale} -> {qo.scale})")
            sg.outputs[k] = i
            sg.operators.remove(op)
            n += 1
    return (_dump(model, len(data)), n) if n else (data, 0)


def install_calibration_fix() -> None:
    """Patch this process's converter so every calibration sees ``break_passthrough``'s model.

    The patch is process-wide; conversions run in a child process (export/worker.py) anyway.
    """
    from tensorflow.lite.python.optimize import calibrator

    orig = calibrator.add_intermediate_tensors
    if getattr(orig, "_while_fix", False):
        return

    def patched(model_content):
        return break_passthrough(bytes(orig(model_content)))[0]

    patched._while_fix = True  # type: ignore[attr-defined]
    calibrator.add_intermediate_tensors = patched


# ------------------------------------------------------------------------ int8 loop-carried state


def _same_q(a, b) -> bool:
    qa, qb = a.quantization, b.quantization
    if qa is None or qb is None or qa.scale is None or qb.scale is None:
        return False
    return (len(qa.scale) == len(qb.scale) and np.allclose(qa.scale, qb.scale, rtol=0, atol=0)
            and list(qa.zeroPoint) == list(qb.zeroPoint))


def _copy_q(dst, src) -> None:
    _, schema = _schema()
    q = schema.QuantizationParametersT()
    q.scale = list(src.quantization.scale)
    q.zeroPoint = list(src.quantization.zeroPoint)
    q.quantizedDimension = src.quantization.quantizedDimension
    dst.quantization = q


def int8_carry(data: bytes) -> tuple[bytes, list[str]]:
    """Make float WHILE loop variables int8.

    The MLIR quantizer keeps WHILE operands in float: the main graph DEQUANTIZEs the initial state,
    the body QUANTIZEs each loop variable on entry and DEQUANTIZEs it on exit (for the loop-invariant
    input projection that is a full [28, B, units] requantization per iteration). This pass carries
    the int8 tensor the body's entry QUANTIZE would have produced instead: the entry QUANTIZE and the
    exit DEQUANTIZE go. Where entry and exit scales differ, the carried tensor takes the body's exit
    parameters (every reader derives its multipliers from the tensor at prepare time, and the initial
    value is quantized to them), so nothing is requantized per iteration; per-channel tensors get an
    int8->int8 QUANTIZE instead. The main graph feeds and reads int8 the same way. Results equal the
    float-carry graph up to int8 rounding (parity-checked on every export).

    Returns:
        (new bytes, one line per loop variable saying what was done); the input bytes if nothing was.

    Raises:
        ExportError: a loop variable in a layout this pass does not handle.
    """
    _, schema = _schema()
    model = _load(data)
    BO = schema.BuiltinOperator
    codes = lambda: builtin_codes(model)  # noqa: E731 - re-read: this pass may add a QUANTIZE code
    qidx = _code_index(model, BO.QUANTIZE)
    log: list[str] = []
    for g in model.subgraphs:
        for W in list(g.operators):
            cc = codes()
            if cc[W.opcodeIndex] != BO.WHILE:
                continue
            B = model.subgraphs[W.builtinOptions.bodySubgraphIndex]
            C = model.subgraphs[W.builtinOptions.condSubgraphIndex]
            for k in range(len(W.inputs)):
                bi = B.inputs[k]
                if B.tensors[bi].type != schema.TensorType.FLOAT32:
                    continue
                b_cons = [op for op in B.operators if bi in op.inputs]
                c_cons = [op for op in C.operators if C.inputs[k] in op.inputs]
                if len(b_cons) != 1 or cc[b_cons[0].opcodeIndex] != BO.QUANTIZE or c_cons:
                    log.append(f"k={k}: body entry is not a single QUANTIZE; left float")
                    continue
                Qb = b_cons[0]
                qa_t = B.tensors[Qb.outputs[0]]
                # exit of the body
                bo = B.outputs[k]
                # with a static batch the converter leaves a loop invariant as the float input itself
                same = bo == bi and list(B.outputs).count(bo) == 1
                P = next((op for op in B.operators if bo in op.outputs), None)
                if not same and (P is None or cc[P.opcodeIndex] != BO.DEQUANTIZE or
                                 sum(bo in op.inputs for op in B.operators) or list(B.outputs).count(bo) != 1):
                    log.append(f"k={k}: body exit is not a DEQUANTIZE; left float")
                    continue
                # main graph side
                wi, wo = W.inputs[k], W.outputs[k]
                Pm = next((op for op in g.operators if wi in op.outputs), None)
                wo_cons = [op for op in g.operators if wo in op.inputs]
                concat_ok = lambda op: (cc[op.opcodeIndex] == BO.CONCATENATION and  # noqa: E731
                                        [cc[o.opcodeIndex] for o in g.operators if op.outputs[0] in o.inputs] == [BO.QUANTIZE])
                if any(cc[op.opcodeIndex] != BO.QUANTIZE and not concat_ok(op) for op in wo_cons) or wo in g.outputs:
                    log.append(f"k={k}: loop result read by a float op; left float")
                    continue
                if Pm is None or cc[Pm.opcodeIndex] != BO.DEQUANTIZE:
                    log.append(f"k={k}: initial value not from DEQUANTIZE; left float")
                    continue
                # --- body: carry int8 with the entry QUANTIZE's parameters
                B.inputs[k] = Qb.outputs[0]
                B.operators.remove(Qb)
                x = P.inputs[0] if P is not None else None
                R = next((op for op in B.operators if x in op.outputs), None)
                if same:
                    B.outputs[k] = B.inputs[k]
                    how = "pass-through"
                elif R is not None and cc[R.opcodeIndex] == BO.RESHAPE and R.inputs[0] == B.inputs[k] \
                        and sum(x in op.inputs for op in B.operators) == 1:
                    B.outputs[k] = B.inputs[k]          # loop invariant: pure pass-through
                    B.operators.remove(R)
                    B.operators.remove(P)
                    how = "pass-through"
                elif _same_q(B.tensors[x], qa_t):
                    B.outputs[k] = x
                    B.operators.remove(P)
                    how = "same scale"
                elif B.tensors[x].type == schema.TensorType.INT8 and \
                        len(B.tensors[x].quantization.scale) == 1 and len(qa_t.quantization.scale) == 1:
                    # carry the body's exit parameters instead of requantizing every iteration: every
                    # reader of the carried tensor derives its multipliers from the tensor at prepare.
                    how = f"adopt exit scale {qa_t.quantization.scale[0]:.4g}->{B.tensors[x].quantization.scale[0]:.4g}"
                    _copy_q(qa_t, B.tensors[x])
                    B.outputs[k] = x
                    B.operators.remove(P)
                else:
                    P.opcodeIndex = qidx                # int8 -> int8 requantize to the entry scale
                    B.tensors[bo].type = schema.TensorType.INT8
                    _copy_q(B.tensors[bo], qa_t)
                    how = f"requant {B.tensors[x].quantization.scale[0]:.4g}->{qa_t.quantization.scale[0]:.4g}"
                ct = C.tensors[C.inputs[k]]
                ct.type = schema.TensorType.INT8
                _copy_q(ct, qa_t)
                # --- main graph: initial value
                x0 = Pm.inputs[0]
                only_while = sum(wi in op.inputs for op in g.operators) == 1
                if _same_q(g.tensors[x0], qa_t):
                    W.inputs[k] = x0
                    if only_while:
                        g.operators.remove(Pm)
                elif only_while:
                    Pm.opcodeIndex = qidx
                    g.tensors[wi].type = schema.TensorType.INT8
                    _copy_q(g.tensors[wi], qa_t)
                else:
                    raise ExportError(f"WHILE loop variable {k}: its initial value is shared with other "
                                      "ops at another scale; the int8 carry pass does not handle that layout")
                # --- main graph: result
                g.tensors[wo].type = schema.TensorType.INT8
                _copy_q(g.tensors[wo], qa_t)
                for Q in wo_cons:
                    if cc[Q.opcodeIndex] == BO.QUANTIZE and _same_q(g.tensors[Q.outputs[0]], qa_t):
                        old = Q.outputs[0]
                        for op in g.operators:
                            op.inputs = [wo if i == old else i for i in op.inputs]
                        g.outputs = [wo if i == old else i for i in g.outputs]
                        g.operators.remove(Q)
                log.append(f"k={k}: int8 ({how})")
            # float CONCATENATION of now-int8 loop results followed by QUANTIZE -> int8 CONCATENATION
            cc = codes()
            for Cop in list(g.operators):
                if cc[Cop.opcodeIndex] != BO.CONCATENATION or g.tensors[Cop.outputs[0]].type != schema.TensorType.FLOAT32:
                    continue
                if any(g.tensors[i].type != schema.TensorType.INT8 for i in Cop.inputs):
                    continue
                cons = [o for o in g.operators if Cop.outputs[0] in o.inputs]
                if len(cons) != 1 or cc[cons[0].opcodeIndex] != BO.QUANTIZE:
                    continue
                Q = cons[0]
                out, old = Cop.outputs[0], Q.outputs[0]
                # int8 CONCATENATION needs every input at the output's scale: carry those loop
                # results at that scale (the body's last op requantizes to it)
                for i in Cop.inputs:
                    if _same_q(g.tensors[i], g.tensors[old]):
                        continue
                    W, k = next((w, list(w.outputs).index(i)) for w in g.operators if i in w.outputs
                                and cc[w.opcodeIndex] == BO.WHILE)
                    _relabel_carry(model, g, W, k, g.tensors[old])
                    log.append(f"carry {k} relabelled to concat scale {g.tensors[old].quantization.scale[0]:.4g}")
                g.tensors[out].type = schema.TensorType.INT8
                _copy_q(g.tensors[out], g.tensors[old])
                for op in g.operators:
                    op.inputs = [out if i == old else i for i in op.inputs]
                g.outputs = [out if i == old else i for i in g.outputs]
                g.operators.remove(Q)
                log.append("concat -> int8")
    if not any("int8" in s for s in log):
        return data, log
    drop_unused_tensors_and_buffers(model)
    return _dump(model, len(data)), log


def _relabel_carry(model, g, W, k, qsrc) -> None:
    """Give loop variable k of WHILE W (all tensors that hold it) the quantization of ``qsrc``."""
    B = model.subgraphs[W.builtinOptions.bodySubgraphIndex]
    C = model.subgraphs[W.builtinOptions.condSubgraphIndex]
    for sg, t in ((g, W.inputs[k]), (g, W.outputs[k]), (B, B.inputs[k]), (B, B.outputs[k]), (C, C.inputs[k])):
        if sg.tensors[t].type != _schema()[1].TensorType.INT8:
            raise ExportError("a WHILE loop variable feeding the int8 CONCATENATION is not int8")
        _copy_q(sg.tensors[t], qsrc)
