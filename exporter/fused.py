"""Masking + LSTM as ONNX's fused ``LSTM`` op with ``sequence_lens``.

tf2onnx turns a masked LSTM into a general ``Loop`` (about 1.7x slower than the
fused op on the seed's masked classifier, ../shared/FACTS.md). When a model is
``Input -> Masking -> one LSTM from zeros -> layers that ignore masks``, a copy
of it without the mask converts to the fused op, and the mask is put back as
data:

- the copy has the same layers and weights, without ``Masking``; the LSTM's
  dropout is dropped (inactive at inference, but ``recurrent_dropout`` makes
  Keras trace a loop tf2onnx does not fuse);
- ``sequence_lens`` is each row's number of steps whose features are not all
  the mask value, which is the row's valid length when the padding is a
  prefix (post-padding; the runtime refuses other inputs for such a bundle);
- at padded steps the fused op writes zeros to ``Y``, where Keras 3 repeats
  the last valid output: ``Y`` becomes ``Where(valid, Y, Y_h)``, which also
  makes the last step of ``Y`` (what a non-``return_sequences`` layer
  returns) the last valid output; ``Y_h``/``Y_c`` (``return_state``) already
  hold the state at the last valid step;
- a row that is all padding gets zeros for ``Y_h``/``Y_c``, which is Keras'
  answer too because the state starts from zeros (an ``initial_state`` is
  not fused).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from exporter.convert import ConvertedGraph, checked, keras_to_onnx
from runtime.manifest import MaskSpec

PREFIX = "parity_mask/"

# Layers that may follow a ``return_sequences`` LSTM: Keras hands them the mask,
# and they ignore it, so removing the mask leaves their result unchanged.
MASK_BLIND = frozenset(
    {"Dense", "Activation", "Dropout", "LayerNormalization", "ReLU", "LeakyReLU", "ELU"}
)


def fuse_masked_lstm(model: Any, mask: MaskSpec, *, opset: int) -> ConvertedGraph | None:
    """``model`` converted with its masked LSTM as ONNX's fused ``LSTM`` op fed
    per-row lengths, or ``None`` (the caller keeps tf2onnx's general ``Loop``
    graph) when the model is not of the supported form. Valid for post-padded
    inputs only. ``model`` itself is left untouched."""
    masking = _masking_layer(model, mask)
    if masking is None:
        return None
    converted = keras_to_onnx(_unmasked_copy(model, masking), opset=opset)
    nodes = converted.proto.graph.node
    lstms = [node for node in nodes if node.op_type == "LSTM"]
    if len(lstms) != 1 or any(node.op_type in ("Loop", "Scan") for node in nodes):
        return None
    proto = _with_sequence_lengths(converted.proto, lstms[0], mask)
    return ConvertedGraph(checked(proto, model.name), converted.inputs, converted.outputs)


def _masking_layer(model: Any, mask: MaskSpec) -> Any:
    """The ``Masking`` layer of a model of the supported form, else ``None``: one input,
    read only by a ``Masking`` layer, read only by one forward LSTM called
    without ``initial_state``; every other layer called once, not recurrent,
    not reading the input or the mask, and blind to masks when the LSTM
    returns sequences."""
    import keras

    if mask.source != "Masking" or len(model.inputs) != 1:
        return None
    source = model.inputs[0]
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if any(len(getattr(layer, "_inbound_nodes", ())) != 1 for layer in layers):
        return None  # shared or nested layers
    readers = [layer for layer in layers if _reads(layer, source)]
    if len(readers) != 1 or not isinstance(readers[0], keras.layers.Masking):
        return None
    masking = readers[0]
    (masked,) = masking._inbound_nodes[0].output_tensors
    readers = [layer for layer in layers if _reads(layer, masked)]
    if len(readers) != 1 or type(readers[0]) is not keras.layers.LSTM:
        return None
    lstm = readers[0]
    node = lstm._inbound_nodes[0]
    if node.input_tensors[0] is not masked or len(node.input_tensors) > 2:
        return None
    if node.arguments.kwargs.get("initial_state") is not None:
        return None
    if lstm.go_backwards or lstm.stateful or lstm.unroll:
        return None
    for layer in layers:
        if layer is masking or layer is lstm:
            continue
        if hasattr(layer, "cell") or hasattr(layer, "layers") or hasattr(layer, "layer"):
            return None  # recurrent, wrappers, nested models
        if lstm.return_sequences and type(layer).__name__ not in MASK_BLIND:
            return None
    return masking


def _reads(layer: Any, tensor: Any) -> bool:
    return any(value is tensor for value in layer._inbound_nodes[0].input_tensors)


def _unmasked_copy(model: Any, masking: Any) -> Any:
    """The same graph and weights without ``Masking`` (and without the mask
    Keras passes along) and the LSTM without dropout. The layers are fresh,
    so ``model`` gains no inbound nodes."""
    import keras
    from keras import tree

    source = model.inputs[0]
    x = keras.Input(source.shape[1:], dtype=source.dtype, name=source.name)
    (masked,) = masking._inbound_nodes[0].output_tensors
    tensors = {id(source): x, id(masked): x}
    copies = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or layer is masking:
            continue
        config = layer.get_config()
        if type(layer) is keras.layers.LSTM:
            config.update(dropout=0.0, recurrent_dropout=0.0)
        copy = type(layer).from_config(config)
        node = layer._inbound_nodes[0]
        args, kwargs = node.arguments.fill_in(tensors)
        kwargs.pop("mask", None)
        outputs = tree.flatten(copy(*args, **kwargs))
        tensors.update(
            (id(old), new) for old, new in zip(node.output_tensors, outputs, strict=True)
        )
        copies.append((layer, copy))
    for layer, copy in copies:
        copy.set_weights(layer.get_weights())
    outputs = [tensors[id(tensor)] for tensor in model.outputs]
    return keras.Model(x, outputs[0] if len(outputs) == 1 else outputs, name=model.name)


def _with_sequence_lengths(
    proto: onnx.ModelProto, lstm: onnx.NodeProto, mask: MaskSpec
) -> onnx.ModelProto:
    """Feed ``lstm`` each row's count of unmasked steps as ``sequence_lens``
    (int32) and make ``Y`` repeat the last valid output at padded steps."""
    graph = proto.graph
    source = graph.input[0].name
    value_type = graph.input[0].type.tensor_type.elem_type
    dtype = helper.tensor_dtype_to_np_dtype(value_type)
    names = {key: PREFIX + key for key in ("value", "features", "zero", "time", "t_axes")}
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(mask.value, dtype), names["value"]),
            numpy_helper.from_array(np.array([2], np.int64), names["features"]),
            numpy_helper.from_array(np.array(0.0, np.float32), names["zero"]),
            numpy_helper.from_array(np.array([1], np.int64), names["time"]),
            numpy_helper.from_array(np.array([1, 3], np.int64), names["t_axes"]),
        ]
    )

    def out(name: str) -> str:
        return PREFIX + name

    nodes = [
        helper.make_node("Equal", [source, names["value"]], [out("is_mask")]),
        helper.make_node("Not", [out("is_mask")], [out("not_mask")]),
        helper.make_node("Cast", [out("not_mask")], [out("not_mask_f")], to=onnx.TensorProto.FLOAT),
        helper.make_node(
            "ReduceSum", [out("not_mask_f"), names["features"]], [out("any")], keepdims=0
        ),
        helper.make_node("Greater", [out("any"), names["zero"]], [out("valid")]),
        helper.make_node("Cast", [out("valid")], [out("valid_i")], to=onnx.TensorProto.INT32),
        helper.make_node(
            "ReduceSum", [out("valid_i"), names["time"]], [out("lengths")], keepdims=0
        ),
    ]
    inputs = list(lstm.input) + [""] * (5 - len(lstm.input))
    inputs[4] = out("lengths")
    lstm.input[:] = inputs
    y = lstm.output[0] if lstm.output else ""
    if y:  # Y is read: padded steps repeat the last valid output, as in Keras
        outputs = list(lstm.output) + [""] * (2 - len(lstm.output))
        y_h = outputs[1] or out("y_h")
        outputs[0], outputs[1] = out("y_raw"), y_h
        lstm.output[:] = outputs
        nodes += [
            helper.make_node("Transpose", [out("valid")], [out("valid_tb")], perm=[1, 0]),
            helper.make_node("Unsqueeze", [out("valid_tb"), names["t_axes"]], [out("valid_4d")]),
        ]
    position = list(graph.node).index(lstm)
    for offset, node in enumerate(nodes):
        graph.node.insert(position + offset, node)
    if y:
        where = helper.make_node("Where", [out("valid_4d"), out("y_raw"), y_h], [y])
        graph.node.insert(position + len(nodes) + 1, where)
    return proto
