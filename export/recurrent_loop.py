"""A looped graph of a trained recurrent zoo model, converted for full-int8 TFLite.

An unrolled graph repeats every op and tensor for each of the 28 time steps, and in int8 each copy
carries its own quantization parameters: the unrolled int8 LSTM file stayed at 0.44x of float32
and the SimpleRNN at 0.90x, far from the ~0.25x of int8 weights. This graph computes the same
function with one ``tf.while_loop``, so the file holds the step once:

- the input projection ``x @ W + b`` of all 28 steps is one FULLY_CONNECTED before the loop;
- step 0 is peeled: its state is zero, so it needs no recurrent matmul (and an LSTM no forget
  gate), and no zero-state tensor has to be built from the batch size (the batch stays free);
- the loop runs steps 1-27: ``z = proj[t] + h @ U`` (no bias: it is in the projection), then the cell;
- Bidirectional runs both directions in the same loop, the backward one reading ``proj[27 - t]``,
  and concatenates [forward, backward] like Keras.

Keras' LSTM gate order is i, f, c (candidate), o.
"""

from __future__ import annotations

from typing import Any

from mnistkit.runtime.errors import ExportError

STEPS = 28


def _cell_weights(layer, backward: bool = False) -> tuple[Any, Any, Any]:
    """(kernel, recurrent kernel, bias) of a SimpleRNN or LSTM layer with the zoo's settings."""
    cfg = layer.get_config()
    expected = {"activation": "tanh", "use_bias": True, "go_backwards": backward, "return_sequences": False}
    if type(layer).__name__ == "LSTM":
        expected["recurrent_activation"] = "sigmoid"
    wrong = {k: cfg.get(k) for k, v in expected.items() if cfg.get(k) != v}
    if wrong:
        raise ExportError(f"the looped int8 graph supports zoo recurrent layers only; {layer.name} has {wrong}")
    cell = layer.cell
    return cell.kernel.numpy(), cell.recurrent_kernel.numpy(), cell.bias.numpy()


def _weights(model) -> tuple[list[tuple[Any, Any, Any]], bool, tuple[Any, Any]]:
    """Per direction (kernel, recurrent kernel, bias), whether the cell is an LSTM, and the Dense head."""
    directions, lstm, head = [], False, None
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("SimpleRNN", "LSTM"):
            directions, lstm = [_cell_weights(layer)], kind == "LSTM"
        elif kind == "Bidirectional":
            if layer.merge_mode != "concat" or type(layer.forward_layer).__name__ != "LSTM":
                raise ExportError(f"the looped int8 graph supports Bidirectional(LSTM) with concat only ({layer.name})")
            directions = [_cell_weights(layer.forward_layer), _cell_weights(layer.backward_layer, backward=True)]
            lstm = True
        elif kind == "Dense":
            head = (layer.kernel.numpy(), layer.bias.numpy())
    if not directions or head is None:
        raise ExportError(f"{model.name} is not a recurrent zoo model (recurrent layer + Dense softmax head)")
    return directions, lstm, head


def loop_function(model):
    """Return a ``tf.function`` over float32 images (N, 28, 28) computing ``model`` with a WHILE loop.

    Args:
        model: a trained zoo rnn, lstm or bilstm Keras model.

    Raises:
        ExportError: the model is not one of those (another layout or layer settings).
    """
    import tensorflow as tf

    directions, lstm, (head_w, head_b) = _weights(model)
    kernels = [tf.constant(w) for w, _, _ in directions]
    recurrent = [tf.constant(u) for _, u, _ in directions]
    biases = [tf.constant(b) for _, _, b in directions]
    head_w, head_b = tf.constant(head_w), tf.constant(head_b)
    units = directions[0][1].shape[0]
    per_dir = 2 if lstm else 1  # loop variables per direction: h (and c)

    def cell(z, c):
        if not lstm:
            return tf.tanh(z), None
        if c is None:  # zero state: the forget gate multiplies zero; slices, not a SPLIT with a dead output
            i, g, o = z[:, :units], z[:, 2 * units:3 * units], z[:, 3 * units:]
            c_new = tf.sigmoid(i) * tf.tanh(g)
        else:
            i, f, g, o = tf.split(z, 4, axis=-1)
            c_new = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(c_new), c_new

    @tf.function(input_signature=[tf.TensorSpec([None, STEPS, 28], tf.float32, name="image")])
    def fn(x):
        time_major = tf.reshape(tf.transpose(x, [1, 0, 2]), [-1, 28])  # (28 * N, 28)
        proj = [tf.reshape(tf.matmul(time_major, w) + b, [STEPS, -1, w.shape[1]])
                for w, b in zip(kernels, biases)]
        state = []
        for d in range(len(directions)):
            h, c = cell(proj[d][0 if d == 0 else STEPS - 1], None)
            state += [h] + ([c] if lstm else [])

        def body(t, *carry):
            new = []
            for d in range(len(directions)):
                h = carry[d * per_dir]
                c = carry[d * per_dir + 1] if lstm else None
                step = t if d == 0 else STEPS - 1 - t
                h, c = cell(tf.gather(proj[d], step) + tf.matmul(h, recurrent[d]), c)
                new += [h] + ([c] if lstm else [])
            return (t + 1, *new)

        out = tf.while_loop(lambda t, *carry: t < STEPS, body, (tf.constant(1), *state),
                            maximum_iterations=STEPS - 1)
        hidden = [out[1 + d * per_dir] for d in range(len(directions))]
        h = hidden[0] if len(hidden) == 1 else tf.concat(hidden, axis=-1)
        return tf.nn.softmax(tf.matmul(h, head_w) + head_b)

    return fn
