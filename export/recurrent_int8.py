"""Full-int8 TFLite of a trained recurrent zoo model (rnn, lstm, bilstm), written op by op.

Why not the converter's int8: it keeps every activation in int8, and an LSTM's cell state (range
~+-13 on a briefly trained model) and gate pre-activations lose too much there (agreement with
Keras 96.8% on such a model). Here the integer scheme follows TFLite's own LSTM spec: int8 weights
and int8 hidden state, int32 accumulators, int16 gate pre-activations and cell state.

Main graph, one copy of the step in a WHILE loop (the file holds the weights once):

A SimpleRNN has no cell state: its h is the state and stays int16 (scale 1/32768), and its recurrent
product is an int16 x int8 (per-channel) FULLY_CONNECTED with int16 output.

- image int8 (B, 28, 28) -> TRANSPOSE -> (28 * B, 28) rows, one per time step;
- per direction: ``BATCH_MATMUL`` int8 x int8 -> int32 (exact), ``ADD`` an int32 constant (bias and
  the input zero point folded in), ``QUANTIZE`` int32 -> int16: the input projection of all steps;
- step 0 is peeled (zero state: no recurrent product, no forget gate);
- the loop, steps 1..27: ``z = proj[t] + QUANTIZE16(BATCH_MATMUL(h, U))`` in int16, then the cell in
  int16 (LOGISTIC/TANH to 1/32768, MUL/ADD for the cell state), the new h requantized to int8
  (scale 1/128: |h| < 1);
- the Dense head FULLY_CONNECTED int8 -> SOFTMAX int8 (scale 1/256, zero point -128).

Every int16 scale is symmetric (zero point 0) and set from the float activations of the calibration
images with a margin; int16 leaves ample resolution for the margin. The int8 input and output keep
the project's contract (input scale 1/255, zero point -128).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mnistkit.export.tflite_builder import GraphBuilder, Subgraph, options
from mnistkit.runtime.errors import ExportError

STEPS = 28
INPUT_SCALE, INPUT_ZERO = 1 / 255, -128
H_SCALE = 1 / 128  # hidden state: tanh/sigmoid products, |h| < 1
UNIT_SCALE = 1 / 32768  # int16 LOGISTIC/TANH outputs (the kernels require it)
OUT_SCALE, OUT_ZERO = 1 / 256, -128
MARGIN = 1.25  # headroom over the calibrated max |value| of each int16 tensor
INT16_MAX = 32767


@dataclass
class Direction:
    """One direction of a recurrent layer: float weights (Keras layout: (in, out))."""

    kernel: np.ndarray
    recurrent: np.ndarray
    bias: np.ndarray
    backward: bool = False
    ranges: dict[str, float] = field(default_factory=dict)  # name -> calibrated max |value|


@dataclass
class RecurrentModel:
    """The float weights of a zoo recurrent model, as this module needs them."""

    lstm: bool
    directions: list[Direction]
    head_kernel: np.ndarray
    head_bias: np.ndarray
    logits_range: tuple[float, float] = (0.0, 0.0)

    @property
    def units(self) -> int:
        return self.directions[0].recurrent.shape[0]


def _check_layer(layer, backward: bool) -> None:
    cfg = layer.get_config()
    expected = {"activation": "tanh", "use_bias": True, "go_backwards": backward, "return_sequences": False}
    if type(layer).__name__ == "LSTM":
        expected["recurrent_activation"] = "sigmoid"
    wrong = {k: cfg.get(k) for k, v in expected.items() if cfg.get(k) != v}
    if wrong:
        raise ExportError(f"the int8 recurrent graph supports zoo recurrent layers only; {layer.name} has {wrong}")


def _direction(layer, backward: bool = False) -> Direction:
    _check_layer(layer, backward)
    cell = layer.cell
    return Direction(cell.kernel.numpy().astype(np.float64), cell.recurrent_kernel.numpy().astype(np.float64),
                     cell.bias.numpy().astype(np.float64), backward)


def from_keras(model) -> RecurrentModel:
    """Read the weights of a trained zoo rnn, lstm or bilstm Keras model.

    Raises:
        ExportError: the model is not one of those (another layout or layer settings).
    """
    directions, lstm, head = [], False, None
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("SimpleRNN", "LSTM"):
            directions, lstm = [_direction(layer)], kind == "LSTM"
        elif kind == "Bidirectional":
            if layer.merge_mode != "concat" or type(layer.forward_layer).__name__ != "LSTM":
                raise ExportError(f"the int8 recurrent graph supports Bidirectional(LSTM) with concat only ({layer.name})")
            directions = [_direction(layer.forward_layer), _direction(layer.backward_layer, backward=True)]
            lstm = True
        elif kind == "Dense":
            head = (layer.kernel.numpy().astype(np.float64), layer.bias.numpy().astype(np.float64))
    if not directions or head is None:
        raise ExportError(f"{model.name} is not a recurrent zoo model (recurrent layer + Dense softmax head)")
    return RecurrentModel(lstm, directions, *head)


# ------------------------------------------------------------------------------ float reference


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def float_trace(rm: RecurrentModel, images: np.ndarray) -> dict[str, np.ndarray]:
    """Run the model in float64 numpy, returning every intermediate the int8 graph quantizes.

    Keys: ``d{k}/proj`` (28, N, G), ``d{k}/rec`` and ``d{k}/z`` (27, N, G), ``d{k}/c`` (28, N, units)
    for an LSTM, ``d{k}/h`` (28, N, units), ``logits`` (N, 10), ``probabilities``.
    """
    x = np.asarray(images, np.float64).transpose(1, 0, 2)  # (28, N, 28)
    out: dict[str, np.ndarray] = {}
    finals = []
    u = rm.units
    for k, d in enumerate(rm.directions):
        proj = x @ d.kernel + d.bias
        order = range(STEPS - 1, -1, -1) if d.backward else range(STEPS)
        hs, cs, recs, zs = [], [], [], []
        h = c = None
        for step, t in enumerate(order):
            z = proj[t]
            if step:
                rec = h @ d.recurrent
                recs.append(rec)
                z = z + rec
                zs.append(z)
            if rm.lstm:
                i, f, g, o = (z[:, j * u:(j + 1) * u] for j in range(4))
                c = _sigmoid(i) * np.tanh(g) + (0.0 if c is None else _sigmoid(f) * c)
                h = _sigmoid(o) * np.tanh(c)
                cs.append(c)
            else:
                h = np.tanh(z)
            hs.append(h)
        out[f"d{k}/proj"], out[f"d{k}/rec"], out[f"d{k}/z"] = proj, np.stack(recs), np.stack(zs)
        out[f"d{k}/h"] = np.stack(hs)
        if rm.lstm:
            out[f"d{k}/c"] = np.stack(cs)
        finals.append(h)
    logits = np.concatenate(finals, axis=-1) @ rm.head_kernel + rm.head_bias
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    out["logits"], out["probabilities"] = logits, e / e.sum(axis=-1, keepdims=True)
    return out


def calibrate(rm: RecurrentModel, images: np.ndarray, batch: int = 500) -> None:
    """Set every direction's int16 ranges and the logits range from float activations of ``images``."""
    lo, hi = np.inf, -np.inf
    for d in rm.directions:
        d.ranges = {}
    for s in range(0, len(images), batch):
        tr = float_trace(rm, images[s:s + batch])
        for k, d in enumerate(rm.directions):
            for name in ("proj", "rec", "z", "c"):
                if f"d{k}/{name}" in tr:
                    d.ranges[name] = max(d.ranges.get(name, 0.0), float(np.abs(tr[f"d{k}/{name}"]).max()))
        lo, hi = min(lo, float(tr["logits"].min())), max(hi, float(tr["logits"].max()))
    rm.logits_range = (min(lo, 0.0), max(hi, 0.0))


# --------------------------------------------------------------------------------- quantization


def _q8(w: np.ndarray) -> tuple[np.ndarray, float]:
    """Symmetric per-tensor int8 weights and their scale."""
    scale = max(float(np.abs(w).max()), 1e-8) / 127
    return np.clip(np.rint(w / scale), -127, 127).astype(np.int8), scale


def _q8_channels(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 weights with one scale per output column of ``w`` (in, out)."""
    scale = np.maximum(np.abs(w).max(axis=0), 1e-8) / 127
    return np.clip(np.rint(w / scale), -127, 127).astype(np.int8), scale


def _s16(max_abs: float) -> float:
    """Scale of a symmetric int16 tensor holding values up to ``max_abs`` with the margin."""
    return max(max_abs, 1e-6) * MARGIN / INT16_MAX


def _i16(g: Subgraph, name: str, shape: list[int], scale: float) -> int:
    return g.tensor(name, shape, np.int16, scale, 0)


class _Names:
    """Tensor names carry the layer and step role so diagnosis can report them."""

    def __init__(self, k: int, suffix: str = "") -> None:
        self.k, self.suffix = k, suffix

    def __call__(self, role: str) -> str:
        return f"d{self.k}/{role}{self.suffix}"


def _cell(g: Subgraph, rm: RecurrentModel, d: Direction, n: _Names, z: int, z_scale: float,
          c: int | None, batch: int) -> tuple[int, int | None]:
    """Append the cell on int16 pre-activations ``z``; return (h, c int16 or None). h is int8 for an
    LSTM (its memory is c) and int16 for a SimpleRNN, whose only state is h: int8 there cost a
    briefly trained SimpleRNN ~0.4 pp of agreement in simulation."""
    u = rm.units
    if not rm.lstm:
        h16 = _i16(g, n("h"), [batch, u], UNIT_SCALE)
        g.op("TANH", [z], [h16])
        return h16, None
    gates = [_i16(g, n(f"z_{gate}"), [batch, u], z_scale) for gate in "ifgo"]
    axis = g.const(n("split_axis"), np.array(1, np.int32))
    g.op("SPLIT", [axis, z], gates, options("Split", numSplits=4))
    act = {}
    for gate, t in zip("ifgo", gates):
        act[gate] = _i16(g, n(f"{'tanh' if gate == 'g' else 'sigmoid'}_{gate}"), [batch, u], UNIT_SCALE)
        g.op("TANH" if gate == "g" else "LOGISTIC", [t], [act[gate]])
    c_scale = _s16(d.ranges["c"])
    ig = _i16(g, n("i*g"), [batch, u], c_scale)
    g.op("MUL", [act["i"], act["g"]], [ig], options("Mul"))
    if c is None:
        c_new = ig
    else:
        fc = _i16(g, n("f*c"), [batch, u], c_scale)
        g.op("MUL", [act["f"], c], [fc], options("Mul"))
        c_new = _i16(g, n("c"), [batch, u], c_scale)
        g.op("ADD", [fc, ig], [c_new], options("Add", potScaleInt16=False))
    tc = _i16(g, n("tanh_c"), [batch, u], UNIT_SCALE)
    g.op("TANH", [c_new], [tc])
    h16 = _i16(g, n("h16"), [batch, u], UNIT_SCALE)
    g.op("MUL", [act["o"], tc], [h16], options("Mul"))
    h = g.tensor(n("h"), [batch, u], np.int8, H_SCALE, 0)
    g.op("QUANTIZE", [h16], [h])
    return h, c_new



def _step(g: Subgraph, rm: RecurrentModel, d: Direction, n: _Names, w: dict[str, Any], proj: int, h: int,
          c: int | None, step: int, B: int) -> tuple[int, int | None]:
    """Append one time step (steps 1..27): z = proj[step] + h @ U in int16, then the cell."""
    G = d.recurrent.shape[1]
    pt = _i16(g, n("proj_t"), [B, G], w["p_scale"])
    g.op("GATHER", [proj, step], [pt], options("Gather", axis=0))
    # int32 accumulators, then int16: an int8 FULLY_CONNECTED output here (XNNPACK-able, 1.5x
    # faster) cost the briefly trained LSTM 0.5 pp of agreement (99.29%, measured).
    rec = _i16(g, n("rec"), [B, G], _s16(d.ranges["rec"]))
    if rm.lstm:
        rec_acc = g.tensor(n("rec_acc"), [B, G], np.int32, H_SCALE * w["us"], 0)
        if id(g) not in w:  # one constant per subgraph, however many steps it holds
            w[id(g)] = g.const(f"d{n.k}/recurrent_kernel", w["uq"], w["us"], 0)
        g.op("BATCH_MATMUL", [h, w[id(g)]], [rec_acc], options("BatchMatMul"))
        g.op("QUANTIZE", [rec_acc], [rec])
    else:  # int16 h x int8 per-channel weights -> int16 (the 16x8 kernel requantizes per channel)
        if id(g) not in w:
            uq, us = _q8_channels(d.recurrent)
            w[id(g)] = g.const(f"d{n.k}/recurrent_kernel", np.ascontiguousarray(uq.T), us, 0)
        g.op("FULLY_CONNECTED", [h, w[id(g)], -1], [rec], options("FullyConnected"))
    z_scale = _s16(d.ranges["z"])
    z = _i16(g, n("z"), [B, G], z_scale)
    g.op("ADD", [pt, rec], [z], options("Add", potScaleInt16=False))
    return _cell(g, rm, d, n, z, z_scale, c, B)

def build(rm: RecurrentModel, batch: int | None = None, probe: bool = False) -> bytes:
    """Write the int8 TFLite flatbuffer of a calibrated model (see the module docstring).

    Args:
        rm: weights with ranges set by :func:`calibrate`.
        batch: a static batch size (e.g. 1 for microcontrollers); None keeps it free.
        probe: write the 27 loop steps inline instead of a WHILE (same ops and scales), with tensor
            names ``d{k}/{role}@{t}``, so an interpreter can read every step's intermediates.

    Returns:
        The .tflite bytes.
    """
    if not all(d.ranges for d in rm.directions):
        raise ExportError("calibrate the recurrent model before building its int8 graph")
    B = -1 if batch is None else int(batch)
    u, G = rm.units, rm.directions[0].recurrent.shape[1]
    per_dir = 3 if rm.lstm else 2  # loop variables per direction: proj, h (, c)
    b = GraphBuilder("mnistkit int8 recurrent: int8 weights/hidden, int32 accumulators, int16 gates and cell")
    main = b.subgraph("main")

    image = main.tensor("image", [B, STEPS, 28], np.int8, INPUT_SCALE, INPUT_ZERO)
    tm = main.tensor("time_major", [STEPS, B, 28], np.int8, INPUT_SCALE, INPUT_ZERO)
    main.op("TRANSPOSE", [image, main.const("perm", np.array([1, 0, 2], np.int32))], [tm])
    # The same bytes labelled with zero point 0: BATCH_MATMUL's int32 output ignores its input's zero
    # point in LiteRT 2.x but subtracts it in tflite-runtime 2.14 (measured); with 0 both compute the
    # raw product, and the zero point's share is folded into the constant added after it.
    rows = main.tensor("rows", [STEPS * B if B > 0 else -1, 28], np.int8, INPUT_SCALE, 0)
    main.op("RESHAPE", [tm, main.const("rows_shape", np.array([-1, 28], np.int32))], [rows])

    weights: list[dict[str, Any]] = []
    init: list[int] = []
    for k, d in enumerate(rm.directions):
        n = _Names(k)
        wq, ws = _q8(d.kernel)
        uq, us = _q8(d.recurrent)
        acc_scale = INPUT_SCALE * ws
        # x_real = (q + 128) / 255: the zero point's share and the bias, exactly in the accumulator
        offset = -INPUT_ZERO * wq.astype(np.int64).sum(axis=0) + np.rint(d.bias / acc_scale).astype(np.int64)
        acc = main.tensor(n("proj_acc"), [STEPS * B if B > 0 else -1, G], np.int32, acc_scale, 0)
        main.op("BATCH_MATMUL", [rows, main.const(n("kernel"), wq, ws, 0)], [acc], options("BatchMatMul"))
        acc_b = main.tensor(n("proj_acc_bias"), [STEPS * B if B > 0 else -1, G], np.int32, acc_scale, 0)
        main.op("ADD", [acc, main.const(n("proj_offset"), offset.astype(np.int32))], [acc_b], options("Add"))
        p_scale = _s16(d.ranges["proj"])
        p_rows = _i16(main, n("proj_rows"), [STEPS * B if B > 0 else -1, G], p_scale)
        main.op("QUANTIZE", [acc_b], [p_rows])
        proj = _i16(main, n("proj"), [STEPS, B, G], p_scale)
        main.op("RESHAPE", [p_rows, main.const(n("proj_shape"), np.array([STEPS, -1, G], np.int32))], [proj])
        first = STEPS - 1 if d.backward else 0
        z0 = _i16(main, n("z0"), [B, G], p_scale)
        main.op("GATHER", [proj, main.const(n("t0"), np.array(first, np.int32))], [z0], options("Gather", axis=0))
        h0, c0 = _cell(main, rm, d, _Names(k), z0, p_scale, None, B)
        init += [proj, h0] + ([c0] if rm.lstm else [])
        weights.append({"uq": uq, "us": us, "p_scale": p_scale})

    if probe:
        hs = _inline_steps(main, rm, weights, init, B, per_dir)
    else:
        hs = _loop(b, main, rm, weights, init, B, per_dir)

    # --- head
    if not rm.lstm:
        h = main.tensor("h_final", [B, u], np.int8, H_SCALE, 0)
        main.op("QUANTIZE", hs, [h])
        hs = [h]
    if len(hs) > 1:
        h = main.tensor("h_concat", [B, u * len(hs)], np.int8, H_SCALE, 0)
        main.op("CONCATENATION", hs, [h], options("Concatenation", axis=1))
    else:
        h = hs[0]
    hq, hsc = _q8(rm.head_kernel.T)  # FULLY_CONNECTED weights are (out, in)
    lo, hi = rm.logits_range
    l_scale = max(hi - lo, 1e-6) / 255
    l_zero = int(np.clip(np.rint(-128 - lo / l_scale), -128, 127))
    logits = main.tensor("logits", [B, 10], np.int8, l_scale, l_zero)
    bias = np.rint(rm.head_bias / (H_SCALE * hsc)).astype(np.int32)
    main.op("FULLY_CONNECTED", [h, main.const("head_kernel", hq, hsc, 0), main.const("head_bias", bias, H_SCALE * hsc, 0)],
            [logits], options("FullyConnected"))
    probs = main.tensor("probabilities", [B, 10], np.int8, OUT_SCALE, OUT_ZERO)
    main.op("SOFTMAX", [logits], [probs], options("Softmax", beta=1.0))
    main.inputs, main.outputs = [image], [probs]
    b.signature({"image": image}, {"probabilities": probs})
    return b.finish()



def _loop(b: GraphBuilder, main: Subgraph, rm: RecurrentModel, weights: list[dict[str, Any]], init: list[int],
          B: int, per_dir: int) -> list[int]:
    """Append the WHILE loop over steps 1..27; return each direction's final h."""
    # --- loop: variables (t, then per direction proj, h[, c])
    t1 = main.const("t_start", np.array(1, np.int32))
    loop_in = [t1, *init]
    loop_out = [main.like(f"loop_out_{i}", x) for i, x in enumerate(loop_in)]

    cond, body = b.subgraph("cond"), b.subgraph("body")
    c_in = [cond.like(main.sg.tensors[x].name.decode(), x, main) for x in loop_in]
    keep = cond.tensor("keep_going", [], np.bool_)
    cond.op("LESS", [c_in[0], cond.const("steps", np.array(STEPS, np.int32))], [keep])
    cond.inputs, cond.outputs = c_in, [keep]

    b_in = [body.like(main.sg.tensors[x].name.decode(), x, main) for x in loop_in]
    t_next = body.tensor("t_next", [], np.int32)
    body.op("ADD", [b_in[0], body.const("one", np.array(1, np.int32))], [t_next], options("Add"))
    b_out = [t_next]
    for k, d in enumerate(rm.directions):
        proj, h, c = b_in[1 + k * per_dir], b_in[2 + k * per_dir], (b_in[3 + k * per_dir] if rm.lstm else None)
        step = b_in[0]
        if d.backward:
            step = body.tensor(f"d{k}/t_backward", [], np.int32)
            body.op("SUB", [body.const("last", np.array(STEPS - 1, np.int32)), b_in[0]], [step], options("Sub"))
        h_new, c_new = _step(body, rm, d, _Names(k), weights[k], proj, h, c, step, B)
        b_out += [proj, h_new] + ([c_new] if rm.lstm else [])
    body.inputs, body.outputs = b_in, b_out
    main.op("WHILE", loop_in, loop_out, options("While", condSubgraphIndex=1, bodySubgraphIndex=2))

    return [loop_out[2 + k * per_dir] for k in range(len(rm.directions))]


def _inline_steps(main: Subgraph, rm: RecurrentModel, weights: list[dict[str, Any]], init: list[int], B: int,
                  per_dir: int) -> list[int]:
    """Append steps 1..27 one after another (the probe graph); return each direction's final h."""
    hs = []
    for k, d in enumerate(rm.directions):
        proj, h, c = init[k * per_dir], init[1 + k * per_dir], (init[2 + k * per_dir] if rm.lstm else None)
        for t in range(1, STEPS):
            step = main.const(f"d{k}/t@{t}", np.array(STEPS - 1 - t if d.backward else t, np.int32))
            h, c = _step(main, rm, d, _Names(k, f"@{t}"), weights[k], proj, h, c, step, B)
        hs.append(h)
    return hs

def convert(model, calibration_images: np.ndarray, batch: int | None = None) -> tuple[bytes, dict[str, Any]]:
    """Calibrate and build the int8 graph of a Keras zoo recurrent model.

    Returns:
        The .tflite bytes and a record of the calibrated int16 ranges.
    """
    rm = from_keras(model)
    calibrate(rm, calibration_images)
    scheme = ("int8 weights and hidden state, int32 accumulators, int16 gates and cell state" if rm.lstm else
              "int8 weights (recurrent per channel), int16 hidden state and pre-activations")
    record = {"scheme": scheme,
              "int16_ranges": {f"d{k}": {n: round(v, 4) for n, v in d.ranges.items()} for k, d in enumerate(rm.directions)},
              "logits_range": [round(v, 4) for v in rm.logits_range]}
    return build(rm, batch), record
