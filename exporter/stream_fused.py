"""A stream graph whose recurrent layers are ONNX's fused ops, started from
the state inputs.

tf2onnx fuses plain LSTMs, also from an ``initial_state``, and leaves GRU and
SimpleRNN as ``Loop``s, which cost most at the shapes a stream runs at (one
row, one step: a ``Loop`` of one iteration). As for the fused export
(:mod:`parity.exporter.fused`), the stream graph is converted with each
recurrent layer as a plain LSTM stand-in, here started from the layer's state
inputs (``[h, c]`` for an LSTM; ``[h, h]`` for a GRU or a SimpleRNN, whose op
then reads ``initial_h`` alone), and the real layer's op is written over the
stand-in's node from its weights, keeping ``initial_h`` (and ``initial_c``).
A SimpleRNN becomes the ``Scan`` that computes its op, started from its state.

Models with a mask keep tf2onnx's ``Loop``s, which follow Keras at every
step: a stream's masked steps may fall anywhere in a chunk (a row with
nothing to say for a whole chunk is a normal thing), which the ops'
``sequence_lens`` (a prefix of valid steps per row) cannot say, and ONNX
Runtime gives zeros for ``Y_h`` of a row of length 0 whatever ``initial_h``.
"""

from __future__ import annotations

from typing import Any

from parity.exporter.convert import keras_to_onnx
from parity.exporter.fused import FusedGraph, NotFused, fused_ops, mark_stand_ins
from parity.exporter.rnn_weights import unsupported
from parity.exporter.stream_plan import StreamPlan
from parity.exporter.stream_twin import stream_graph
from parity.runtime.bundle_format.manifest import MaskSpec
from parity.runtime.errors import ParityError


def fuse_stream(
    model: Any, plan: StreamPlan, mask: MaskSpec | None, *, opset: int
) -> FusedGraph | NotFused:
    """The stream graph of ``model`` with fused recurrent ops, or why not (the
    caller keeps tf2onnx's conversion of the stateless twin).

    Args:
        model: the functional model ``plan`` was made for.
        plan: :func:`parity.exporter.stream_plan.plan_stream`'s answer.
        mask: the model's mask, if any (then nothing is fused).
        opset: the ONNX opset.
    """
    import keras

    if mask is not None:
        return NotFused(
            "the model is masked, and a stream's masked steps may fall anywhere in a chunk, "
            "which the fused ops' sequence lengths cannot say"
        )
    for layer in plan.recurrent:
        why = unsupported(layer)
        if why is not None:
            return NotFused(f"layer {layer.name!r}: {why}")
        if layer.unroll:
            return NotFused(f"layer {layer.name!r} has unroll=True")
    stand_ins = []

    def stand_in(layer: Any, sequence: Any, states: list[Any], _mask: Any) -> tuple:
        lstm = keras.layers.LSTM(
            layer.cell.units,
            return_sequences=layer.return_sequences,
            return_state=True,
            name=layer.name,
        )
        stand_ins.append(lstm)
        output, h, c = lstm(sequence, initial_state=[states[0], states[-1]])
        return output, [h, c][: len(states)]

    try:
        copy = stream_graph(model, plan, stand_in)
        mark_stand_ins(stand_ins)
        converted = keras_to_onnx(copy.model, opset=opset)
    except ParityError as exc:  # the twin may still convert
        return NotFused(f"the copy with stand-in layers did not convert ({exc})")
    return fused_ops(converted, list(plan.recurrent), model.name, initial_state=True)
