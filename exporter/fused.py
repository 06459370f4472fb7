"""Recurrent layers as ONNX's fused ``LSTM``, ``GRU`` or ``RNN`` ops, masked or not.

tf2onnx fuses only plain LSTMs: it turns GRU, SimpleRNN, an LSTM with other
activations or dropout, and any masked layer into a general ``Loop`` (about
1.7x slower than the fused op on the seed's masked classifier,
../shared/FACTS.md; 10x at batch 1 for two stacked GRUs). Two forms are fused:

- masked: ``Input -> Masking -> one LSTM, GRU or SimpleRNN from zeros ->
  non-recurrent layers`` (or ``Embedding(mask_zero=True)`` in ``Masking``'s
  place);
- not masked: one input and any number of forward LSTMs, GRUs and
  SimpleRNNs from zeros anywhere among other built-in layers (stacked, after
  a convolution, side by side), with no ``Masking`` or ``mask_zero`` inside.

parity converts a copy of the model in which each recurrent layer is a
plain LSTM stand-in (which tf2onnx turns into one ``LSTM`` node; the k-th
stand-in's input weights are all k + 1, which finds its node), then writes
the real layer's op over that node from its weights
(``exporter.rnn_weights``), and puts the mask back as data (below). Last, a
SimpleRNN's ``RNN`` op is written as the ``Scan`` that computes it
(``exporter.rnn_scan``: ONNX Runtime's ``RNN`` kernel is several times slower).
The mask as data:

- the copy has the same layers and weights, without ``Masking`` and with
  ``mask_zero`` off (and so without the mask Keras passes along); dropout,
  inactive at inference, goes with the stand-in;
- ``sequence_lens`` is each row's number of steps whose features are not all
  the mask value (whose token id is not 0, for an ``Embedding``), which is the
  row's valid length when the padding is a prefix (post-padding; the runtime
  refuses other inputs for such a bundle);
- at padded steps the fused op writes zeros to ``Y``, where Keras 3 repeats
  the last valid output: ``Y`` becomes ``Where(valid, Y, Y_h)``, which also
  makes the last step of ``Y`` (what a non-``return_sequences`` layer
  returns) the last valid output; ``Y_h``/``Y_c`` (``return_state``) already
  hold the state at the last valid step; where ``Y`` is read for its last
  step alone, that read takes ``Y_h`` and no ``Y`` is written;
- a row that is all padding gets zeros for ``Y_h``/``Y_c``, which is Keras'
  answer too because the state starts from zeros (an ``initial_state`` is
  not fused);
- the op runs only as many steps as the longest row has: its input is
  sliced on the time axis to the largest length (at least 1 step), and
  ``Y`` is padded back to the input's length before the ``Where`` above
  fills the padded steps. Steps past every row's length change nothing, so
  the outputs are those of the untrimmed op; a batch of short rows in a long
  padded array (the second seed's data: 20 to 45 valid of 100 steps) costs
  what its longest row costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from parity.exporter.convert import ConvertedGraph, checked, keras_to_onnx
from parity.exporter.keras_graph import StandIn, all_layers, calls, is_recurrent, rebuilt
from parity.exporter.onnx_nodes import axes_op, read_by, readers_of, without_dead
from parity.exporter.rnn_scan import rnn_as_scan
from parity.exporter.rnn_weights import fused_op, unsupported
from parity.runtime.bundle_format.manifest import MaskSpec
from parity.runtime.errors import ParityError

PREFIX = "parity_fused/"

# Layers that may follow a masked ``return_sequences`` layer: Keras hands them
# the mask, and they ignore it, so removing the mask leaves their result unchanged.
MASK_BLIND = frozenset(
    {"Dense", "Activation", "Dropout", "LayerNormalization", "ReLU", "LeakyReLU", "ELU"}
)


@dataclass(frozen=True)
class FusedGraph:
    """A converted model whose recurrent layers are ONNX ops: ``layers``
    holds each layer's name and op type, in the model's order (an ``RNN``
    is written as a ``Scan``, ``exporter.rnn_scan``)."""

    converted: ConvertedGraph
    layers: tuple[tuple[str, str], ...]

    @property
    def op_types(self) -> tuple[str, ...]:
        return tuple(op_type for _, op_type in self.layers)

    def notes(self) -> list[str]:
        """How each layer appears in the graph, in words for the manifest."""
        return [
            f"layer {name!r} is {_form(op)}, written from the layer's weights"
            for name, op in self.layers
        ]


def _form(op_type: str) -> str:
    if op_type == "RNN":
        return "ONNX's RNN op written as a Scan of Gemm and activation nodes"
    return f"ONNX's fused {op_type} op"


@dataclass(frozen=True)
class NotFused:
    """Why a model keeps tf2onnx's general graph, in words for a manifest note."""

    reason: str


def fuse_recurrent(model: Any, mask: MaskSpec | None, *, opset: int) -> FusedGraph | NotFused:
    """``model`` converted with its recurrent layers as ONNX's fused ops (the
    one layer fed per-row lengths when ``mask`` is given), or why not (the
    caller keeps tf2onnx's general graph) when the model is not of a
    supported form. A masked graph is valid for post-padded inputs only.
    ``model`` itself is left untouched."""
    found = _recurrent_layers(model, mask)
    if isinstance(found, NotFused):
        return found
    recurrents, masker = found
    try:
        converted = keras_to_onnx(_stand_in_copy(model, recurrents, masker), opset=opset)
    except ParityError as exc:  # the general graph may still convert
        return NotFused(f"the copy with stand-in layers did not convert ({exc})")
    return fused_ops(converted, recurrents, model.name, mask=mask)


def fused_ops(
    converted: ConvertedGraph,
    recurrents: list[Any],
    name: str,
    *,
    mask: MaskSpec | None = None,
    initial_state: bool = False,
) -> FusedGraph | NotFused:
    """A converted stand-in copy (:func:`mark_stand_ins`) with each stand-in's
    ``LSTM`` node made the op of the layer it stands in for, written from that
    layer's weights (a SimpleRNN's as the ``Scan`` that computes it), or why
    not. The graph is changed in place.

    Args:
        converted: tf2onnx's graph of the copy.
        recurrents: the real layers, in the stand-ins' order.
        name: the model's name, for messages.
        mask: the mask whose per-row lengths the one layer is fed, if any.
        initial_state: keep the state each stand-in starts from (a stream's
            state inputs) rather than zeros.
    """
    proto = converted.proto
    if any(node.op_type in ("Loop", "Scan") for node in proto.graph.node):
        return NotFused("tf2onnx did not make every recurrent layer's stand-in an LSTM op")
    stand_ins = _stand_in_nodes(proto.graph, len(recurrents))
    if stand_ins is None:
        return NotFused("tf2onnx did not make every recurrent layer's stand-in one LSTM op")
    layers = []
    for layer, node in zip(recurrents, stand_ins, strict=True):
        _write_op(proto.graph, node, layer, initial_state=initial_state)
        op_type = node.op_type
        _last_step_from_state(proto.graph, node)
        if mask is not None:
            _with_sequence_lengths(proto.graph, node, mask)
        if op_type == "RNN":
            rnn_as_scan(proto.graph, node)
        layers.append((layer.name, op_type))
    _drop_unused(proto.graph)
    checked_graph = ConvertedGraph(checked(proto, name), converted.inputs, converted.outputs)
    return FusedGraph(checked_graph, tuple(layers))


def mark_stand_ins(stand_ins: list[Any]) -> None:
    """Give the ``k``-th stand-in LSTM input weights all ``k + 1`` (and zero
    recurrent weights and biases), by which :func:`fused_ops` finds its node."""
    for marker, stand_in in enumerate(stand_ins, start=1):
        kernel, recurrent, bias = stand_in.get_weights()
        stand_in.set_weights(
            [np.full_like(kernel, marker), np.zeros_like(recurrent), np.zeros_like(bias)]
        )


def _stand_in_nodes(graph: onnx.GraphProto, count: int) -> list[onnx.NodeProto] | None:
    """The ``LSTM`` node of each stand-in, in the stand-ins' order: stand-in
    ``k``'s input weights are all ``k + 1`` (``_stand_in_copy``), which
    tf2onnx's reordering of the gates leaves as they are. ``None`` when the
    ``LSTM`` nodes are not one per stand-in."""
    constants = {t.name: t for t in graph.initializer}
    found: dict[int, onnx.NodeProto] = {}
    for node in (node for node in graph.node if node.op_type == "LSTM"):
        if node.input[1] not in constants:
            return None
        weights = numpy_helper.to_array(constants[node.input[1]])
        marker = int(weights.flat[0]) - 1 if weights.size else -1
        if not 0 <= marker < count or marker in found or np.any(weights != marker + 1):
            return None
        found[marker] = node
    return [found[k] for k in range(count)] if len(found) == count else None


def _recurrent_layers(model: Any, mask: MaskSpec | None) -> tuple[list, Any] | NotFused:
    """The recurrent layers, in the model's order, and the layer that masks
    the input (or ``None``) of a model of a supported form, else why not.
    Either form has one input, layers called once, forward LSTMs, GRUs and
    SimpleRNNs with activations ONNX has, called without ``initial_state``,
    and every other layer a built-in Keras layer that is not recurrent, a
    wrapper or a model:

    - masked: the input read only by its ``Masking`` or
      ``Embedding(mask_zero=True)`` layer, whose output only one recurrent
      layer reads; when that layer returns sequences, the layers after it
      are blind to masks;
    - not masked: no ``Masking`` or ``Embedding(mask_zero=True)`` anywhere,
      and any number of recurrent layers anywhere (stacked GRUs, a
      SimpleRNN after a convolution)."""
    import keras

    if len(model.inputs) != 1:
        return NotFused(f"the model has {len(model.inputs)} inputs")
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    for layer in layers:
        if len(calls(layer, model)) != 1:
            return NotFused(f"layer {layer.name!r} is called more than once")
    if mask is None:
        return _unmasked_layers(model, layers)
    source = model.inputs[0]
    readers = [layer for layer in layers if _reads(model, layer, source)]
    if len(readers) != 1 or type(readers[0]).__name__ != mask.source:
        return NotFused(f"the input is read by more than its {mask.source} layer")
    masker = readers[0]
    (feed,) = calls(masker, model)[0].outputs
    readers = [layer for layer in layers if _reads(model, layer, feed)]
    what = f"the {mask.source} layer's output"
    if len(readers) != 1:
        return NotFused(f"{what} is read by {len(readers)} layers")
    recurrent = readers[0]
    why = _why_not_fusable(model, recurrent)
    if why is not None:
        return NotFused(why)
    if calls(recurrent, model)[0].inputs[0] is not feed:
        return NotFused(f"layer {recurrent.name!r} reads more than {what}")
    for layer in layers:
        if layer is masker or layer is recurrent:
            continue
        why = _why_not_rebuilt(layer)
        if why is not None:
            return NotFused(why)
        if recurrent.return_sequences and type(layer).__name__ not in MASK_BLIND:
            kind = type(layer).__name__
            return NotFused(
                f"layer {layer.name!r} ({kind}) may read the mask that {recurrent.name!r} passes on"
            )
    return [recurrent], masker


def _unmasked_layers(model: Any, layers: list) -> tuple[list, None] | NotFused:
    """Every recurrent layer of a model without masks, or why not."""
    recurrents = []
    for layer in layers:
        kind = type(layer).__name__
        masking = kind == "Masking" or (kind == "Embedding" and layer.mask_zero)
        if masking:
            return NotFused(f"layer {layer.name!r} ({kind}) masks a value that is not the input")
        if is_recurrent(layer):
            why = _why_not_fusable(model, layer)
            if why is not None:
                return NotFused(why)
            recurrents.append(layer)
        else:
            why = _why_not_rebuilt(layer)
            if why is not None:
                return NotFused(why)
    if not recurrents:
        return NotFused("the model has no recurrent layer")
    return recurrents, None


def _why_not_fusable(model: Any, layer: Any) -> str | None:
    """Why a recurrent ``layer`` has no fused op, or ``None``."""
    why = unsupported(layer)
    if why is not None:
        return f"layer {layer.name!r}: {why}"
    call = calls(layer, model)[0]
    if call.kwargs.get("initial_state") is not None or len(call.inputs) > 2:
        return f"layer {layer.name!r} starts from an initial_state"
    for flag in ("go_backwards", "stateful", "unroll"):
        if getattr(layer, flag):
            return f"layer {layer.name!r} has {flag}=True"
    return None


def _why_not_rebuilt(layer: Any) -> str | None:
    """Why a layer that is not fused cannot be copied into the stand-in
    model, or ``None``."""
    if not type(layer).__module__.startswith("keras."):
        # a custom layer may not rebuild from its config
        return f"layer {layer.name!r} is a custom layer"
    kind = type(layer).__name__
    if all_layers(layer):
        # it holds layers: recurrent (its cell), a wrapper (Bidirectional) or a model
        return f"layer {layer.name!r} ({kind}) is recurrent, a wrapper or a model"
    return None


def _reads(model: Any, layer: Any, tensor: Any) -> bool:
    return any(value is tensor for value in calls(layer, model)[0].inputs)


def _stand_in_copy(model: Any, recurrents: list, masker: Any) -> Any:
    """The same graph and weights without ``Masking``, ``mask_zero`` off (so
    without the mask Keras passes along), each of ``recurrents`` replaced by
    a plain LSTM of its width and returns, whose input weights are all
    ``k + 1`` for the ``k``-th (``_stand_in_nodes`` finds each by them; the
    real weights are written into the ONNX ops afterwards). The layers are
    fresh, so ``model`` gains no inbound nodes."""
    import keras

    stand_ins = {
        id(layer): keras.layers.LSTM(
            layer.cell.units,
            return_sequences=layer.return_sequences,
            return_state=layer.return_state,
            name=layer.name,
        )
        for layer in recurrents
    }

    def replace(layer: Any) -> Any:
        if id(layer) in stand_ins:
            return StandIn(stand_ins[id(layer)])
        if layer is masker and isinstance(layer, keras.layers.Masking):
            return None
        return _rebuilt(layer, mask_zero=False if layer is masker else None)

    copy = rebuilt(model, replace, masks=False)
    mark_stand_ins([stand_ins[id(layer)] for layer in recurrents])
    return copy


def _write_op(
    graph: onnx.GraphProto, node: onnx.NodeProto, layer: Any, *, initial_state: bool
) -> None:
    """Make the stand-in's ``LSTM`` node ``layer``'s op with ``layer``'s weights;
    the stand-in's weights are removed. Input ``X`` and outputs ``Y``/``Y_h``
    keep their places (and ``Y_c`` for an LSTM); with ``initial_state``, so do
    ``initial_h`` (and an LSTM's ``initial_c``), else the op starts from zeros."""
    op = fused_op(layer)
    names = [PREFIX + f"{layer.name}/{part}" for part in ("W", "R", "B")]
    for name, value in zip(names, (op.weights, op.recurrence, op.bias), strict=True):
        graph.initializer.append(numpy_helper.from_array(value, name))
    states = []
    if initial_state:
        count = 2 if op.op_type == "LSTM" else 1
        states = list(node.input[5 : 5 + count])
        if len(states) != count or not all(states):
            raise ParityError(f"the stand-in of layer {layer.name!r} lost its initial state")
    node.op_type = op.op_type
    # no sequence_lens (yet): X, W, R, B, then the initial state where kept
    node.input[:] = [node.input[0], *names, *(["", *states] if states else [])]
    outputs = list(node.output)[: 3 if op.op_type == "LSTM" else 2]
    node.output[:] = outputs
    del node.attribute[:]
    node.attribute.extend(helper.make_attribute(key, value) for key, value in op.attributes.items())


def _drop_unused(graph: onnx.GraphProto) -> None:
    """Remove the stand-in's nodes and initializers that no output depends on
    any more (its weights, its initial state)."""
    live = without_dead(list(graph.node), {output.name for output in graph.output})
    initializers = read_by(live, graph.initializer)
    del graph.node[:]
    graph.node.extend(live)
    del graph.initializer[:]
    graph.initializer.extend(initializers)


def _with_sequence_lengths(graph: onnx.GraphProto, node: onnx.NodeProto, mask: MaskSpec) -> None:
    """Feed the fused ``node`` each row's count of unmasked steps as
    ``sequence_lens`` (int32) and make ``Y`` repeat the last valid output at
    padded steps."""
    source = graph.input[0].name
    value_type = graph.input[0].type.tensor_type.elem_type
    dtype = helper.tensor_dtype_to_np_dtype(value_type)
    keys = ("value", "features", "zero", "time", "t_axes", "one", "origin", "begin", "end")
    names = {key: PREFIX + "mask/" + key for key in keys}
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(mask.value, dtype), names["value"]),
            numpy_helper.from_array(np.array([2], np.int64), names["features"]),
            numpy_helper.from_array(np.array(0.0, np.float32), names["zero"]),
            numpy_helper.from_array(np.array([1], np.int64), names["time"]),
            numpy_helper.from_array(np.array([1, 3], np.int64), names["t_axes"]),
            numpy_helper.from_array(np.array([1], np.int64), names["one"]),
            numpy_helper.from_array(np.array([0], np.int64), names["origin"]),
            # Y's pads (time, directions, batch, hidden): begins, then the time end
            numpy_helper.from_array(np.zeros(4, np.int64), names["begin"]),
            numpy_helper.from_array(np.zeros(3, np.int64), names["end"]),
        ]
    )

    def out(name: str) -> str:
        return PREFIX + "mask/" + name

    tokens = len(graph.input[0].type.tensor_type.shape.dim) == 2  # (batch, time) ids
    nodes = [
        helper.make_node("Equal", [source, names["value"]], [out("is_mask")]),
        helper.make_node("Not", [out("is_mask")], [out("valid" if tokens else "not_mask")]),
    ]
    if not tokens:  # a step is valid where any feature is not the mask value
        nodes += [
            helper.make_node(
                "Cast", [out("not_mask")], [out("not_mask_f")], to=onnx.TensorProto.FLOAT
            ),
            helper.make_node(
                "ReduceSum", [out("not_mask_f"), names["features"]], [out("any")], keepdims=0
            ),
            helper.make_node("Greater", [out("any"), names["zero"]], [out("valid")]),
        ]
    nodes += [
        helper.make_node("Cast", [out("valid")], [out("valid_i")], to=onnx.TensorProto.INT32),
        helper.make_node(
            "ReduceSum", [out("valid_i"), names["time"]], [out("lengths")], keepdims=0
        ),
    ]
    # the op's X is time-major (layout 0): slice its steps to the longest row's
    nodes += [
        helper.make_node("ReduceMax", [out("lengths")], [out("longest_i")], keepdims=1),
        helper.make_node("Cast", [out("longest_i")], [out("longest")], to=onnx.TensorProto.INT64),
        helper.make_node("Max", [out("longest"), names["one"]], [out("run_steps")]),
        helper.make_node(
            "Slice",
            [node.input[0], names["origin"], out("run_steps"), names["origin"]],
            [out("x_run")],
        ),
    ]
    inputs = list(node.input) + [""] * (5 - len(node.input))
    all_steps = inputs[0]
    inputs[0] = out("x_run")
    inputs[4] = out("lengths")
    node.input[:] = inputs
    y = node.output[0] if node.output else ""
    if y:  # Y is read: padded steps repeat the last valid output, as in Keras
        outputs = list(node.output) + [""] * (2 - len(node.output))
        y_h = outputs[1] or out("y_h")
        outputs[0], outputs[1] = out("y_run"), y_h
        node.output[:] = outputs
        nodes += [
            helper.make_node("Transpose", [out("valid")], [out("valid_tb")], perm=[1, 0]),
            helper.make_node("Unsqueeze", [out("valid_tb"), names["t_axes"]], [out("valid_4d")]),
            helper.make_node("Shape", [all_steps], [out("x_shape")]),
            helper.make_node("Gather", [out("x_shape"), names["origin"]], [out("steps")]),
            helper.make_node("Sub", [out("steps"), out("run_steps")], [out("skipped")]),
            helper.make_node(
                "Concat", [names["begin"], out("skipped"), names["end"]], [out("pads")], axis=0
            ),
        ]
    position = list(graph.node).index(node)
    for offset, new in enumerate(nodes):
        graph.node.insert(position + offset, new)
    if y:
        after = [
            helper.make_node("Pad", [out("y_run"), out("pads")], [out("y_raw")]),
            helper.make_node("Where", [out("valid_4d"), out("y_raw"), y_h], [y]),
        ]
        for offset, new in enumerate(after):
            graph.node.insert(position + len(nodes) + 1 + offset, new)


def _last_step_from_state(graph: onnx.GraphProto, node: onnx.NodeProto) -> None:
    """When ``Y`` is read only for its last step (tf2onnx's graph of a layer
    that does not return sequences: a Squeeze of the direction axis, then a
    Slice of the last step), have those reads take ``Y_h`` and the op write
    no ``Y``. The last step of ``Y`` is ``Y_h``, element for element; masked,
    where the padded steps repeat the last valid output
    (``_with_sequence_lengths``), it is the state at each row's last valid
    step, which is ``Y_h`` too. The op then writes no sequence and nothing
    fills it."""
    y = node.output[0] if node.output else ""
    outputs = {output.name for output in graph.output}
    if not y or y in outputs:
        return
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    readers = readers_of(graph.node)
    last_steps = []
    for squeeze in readers.get(y, []):
        if not axes_op(squeeze, "Squeeze", constants):
            return
        if constants[squeeze.input[1]].tolist() != [1] or squeeze.output[0] in outputs:
            return
        for cut in readers.get(squeeze.output[0], []):
            if not _slices_last_step(cut, constants) or cut.output[0] in outputs:
                return
            last_steps.append(cut)
    if not last_steps:
        return
    if len(node.output) < 2 or not node.output[1]:
        outputs = list(node.output) + [""] * (2 - len(node.output))
        outputs[1] = PREFIX + "mask/y_h"
        node.output[:] = outputs
    rename = {cut.output[0]: node.output[1] for cut in last_steps}
    for reader in graph.node:
        reader.input[:] = [rename.get(name, name) for name in reader.input]
    node.output[0] = ""


def _slices_last_step(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> bool:
    """A Slice of the last element of axis 0 with constant bounds."""
    if node.op_type != "Slice" or len(node.input) < 4:
        return False
    if any(name not in constants for name in node.input[1:] if name):
        return False
    starts, ends, axes = (constants[name].tolist() for name in node.input[1:4])
    steps = constants[node.input[4]].tolist() if len(node.input) > 4 and node.input[4] else [1]
    return starts == [-1] and axes == [0] and steps == [1] and ends[0] >= 2**31 - 1


def _rebuilt(layer: Any, mask_zero: bool | None) -> Any:
    """A fresh copy of ``layer`` from its config (``mask_zero`` overridden for
    an Embedding when given). The config comes from a model already in memory,
    which its loading judged safe or the user allowed, so Keras' safe mode
    would only refuse again what was allowed (a ``Lambda``'s code)."""
    import keras

    config = keras.saving.serialize_keras_object(layer)
    if mask_zero is not None:
        config["config"]["mask_zero"] = mask_zero
    return keras.saving.deserialize_keras_object(config, safe_mode=False)
