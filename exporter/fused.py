"""Masking + LSTM as ONNX's fused ``LSTM`` op with ``sequence_lens``.

tf2onnx turns a masked LSTM into a general ``Loop`` (about 1.7x slower than the
fused op on the seed's masked classifier, ../shared/FACTS.md). When a model is
a plain chain ``Input -> Masking -> LSTM -> per-step or Dense layers``, its
LSTM starts from zeros and has no dropout (with dropout, Keras traces a loop
that tf2onnx does not fuse even without the mask), the same model without
the ``Masking`` layer converts to the fused op; the mask is then put back as data:

- ``sequence_lens`` is each row's number of steps whose features are not all
  the mask value, which is the row's valid length when the padding is a
  prefix (post-padding; the runtime refuses other inputs for such a bundle);
- at padded steps the fused op writes zeros to ``Y``, where Keras 3 repeats
  the last valid output: ``Y`` becomes ``Where(valid, Y, Y_h)``, which also
  makes the last step of ``Y`` (what a non-``return_sequences`` layer
  returns) the last valid output;
- a row that is all padding gets zeros for ``Y_h``/``Y_c``, which is Keras'
  answer too because the state starts from zeros.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from exporter.convert import ConvertedGraph, checked, keras_to_onnx
from runtime.manifest import MaskSpec

PREFIX = "parity_mask/"


def fuse_masked_lstm(model: Any, mask: MaskSpec, *, opset: int) -> ConvertedGraph | None:
    """The model converted with its masked LSTM as the fused op, or ``None``
    (with the general graph left to the caller) when it is not of the
    supported form."""
    unmasked = _without_masking(model, mask)
    if unmasked is None:
        return None
    converted = keras_to_onnx(unmasked, opset=opset)
    lstms = [node for node in converted.proto.graph.node if node.op_type == "LSTM"]
    if len(lstms) != 1 or any(n.op_type == "Loop" for n in converted.proto.graph.node):
        return None
    proto = _with_sequence_lengths(converted.proto, lstms[0], mask)
    return ConvertedGraph(checked(proto, model.name), converted.inputs, converted.outputs)


def _without_masking(model: Any, mask: MaskSpec) -> Any:
    """The same layers, in a chain, without the ``Masking`` layer; ``None``
    unless the model is ``Input -> Masking -> LSTM (from zeros) -> ...`` with
    one input, one output, float features and no other recurrent layer."""
    import keras

    if mask.source != "Masking" or len(model.inputs) != 1 or len(model.outputs) != 1:
        return None
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if len(layers) < 2 or not isinstance(layers[0], keras.layers.Masking):
        return None
    lstm = layers[1]
    if type(lstm) is not keras.layers.LSTM or lstm.go_backwards or lstm.return_state:
        return None
    if lstm.dropout or lstm.recurrent_dropout:  # Keras then traces a loop tf2onnx cannot fuse
        return None
    if any(hasattr(layer, "cell") or hasattr(layer, "forward_layer") for layer in layers[2:]):
        return None
    if not _is_chain(model, layers):
        return None
    source = model.inputs[0]
    x = keras.Input(source.shape[1:], dtype=source.dtype, name=source.name)
    h = x
    for layer in layers[1:]:
        h = layer(h)
    return keras.Model(x, h, name=model.name)


def _is_chain(model: Any, layers: list[Any]) -> bool:
    """Each layer is called once, on the previous layer's output (the LSTM
    also receives the mask, and nothing else: no initial state)."""
    previous = model.inputs[0]
    for index, layer in enumerate(layers):
        nodes = getattr(layer, "_inbound_nodes", [])
        allowed = 2 if index == 1 else 1
        if len(nodes) != 1 or not 1 <= len(nodes[0].input_tensors) <= allowed:
            return False
        if nodes[0].input_tensors[0] is not previous:
            return False
        (previous,) = nodes[0].output_tensors
    return previous is model.outputs[0]


def _with_sequence_lengths(proto: onnx.ModelProto, lstm: onnx.NodeProto, mask: MaskSpec):
    graph = proto.graph
    source = graph.input[0].name
    value_type = graph.input[0].type.tensor_type.elem_type
    dtype = helper.tensor_dtype_to_np_dtype(value_type)
    names = {key: PREFIX + key for key in ("value", "axes", "zero", "time_axis", "t_axes")}
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(mask.value, dtype), names["value"]),
            numpy_helper.from_array(np.array([2], np.int64), names["axes"]),
            numpy_helper.from_array(np.array(0.0, np.float32), names["zero"]),
            numpy_helper.from_array(np.array([1], np.int64), names["time_axis"]),
            numpy_helper.from_array(np.array([1, 3], np.int64), names["t_axes"]),
        ]
    )

    def out(name: str) -> str:
        return PREFIX + name

    y, y_h = lstm.output[0], lstm.output[1]
    if not y_h:
        lstm.output[1] = y_h = out("y_h")
    nodes = [
        helper.make_node("Equal", [source, names["value"]], [out("is_mask")]),
        helper.make_node("Not", [out("is_mask")], [out("not_mask")]),
        helper.make_node("Cast", [out("not_mask")], [out("not_mask_f")], to=onnx.TensorProto.FLOAT),
        helper.make_node(
            "ReduceSum", [out("not_mask_f"), names["axes"]], [out("features")], keepdims=0
        ),
        helper.make_node("Greater", [out("features"), names["zero"]], [out("valid")]),
        helper.make_node("Cast", [out("valid")], [out("valid_i")], to=onnx.TensorProto.INT32),
        helper.make_node(
            "ReduceSum", [out("valid_i"), names["time_axis"]], [out("lengths")], keepdims=0
        ),
        helper.make_node("Transpose", [out("valid")], [out("valid_tb")], perm=[1, 0]),
        helper.make_node("Unsqueeze", [out("valid_tb"), names["t_axes"]], [out("valid_t1b1")]),
    ]
    inputs = list(lstm.input) + [""] * (8 - len(lstm.input))
    inputs[4] = out("lengths")
    lstm.input[:] = inputs[: max(5, len(lstm.input))]
    position = list(graph.node).index(lstm)
    for offset, node in enumerate(nodes):
        graph.node.insert(position + offset, node)
    if y:  # Y is read: padded steps repeat the last valid output, as in Keras
        raw = out("y_raw")
        lstm.output[0] = raw
        where = helper.make_node("Where", [out("valid_t1b1"), raw, y_h], [y])
        graph.node.insert(position + len(nodes) + 1, where)
    return proto
