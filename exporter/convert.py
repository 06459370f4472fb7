"""Converting one Keras model to one ONNX graph with tf2onnx.

The graph keeps the Keras names (inputs: the ``Input`` names; outputs: the
names of the layers that produce them), names its dynamic axes (``batch``,
``time``), passes ``onnx.checker``'s full check and strict shape inference,
and comes with the :class:`TensorSpec` of every input and output for the
manifest.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from parity.exporter.axes import AxisNames, axis_names
from parity.exporter.keras_graph import all_layers, input_names, is_recurrent, model_inputs
from parity.exporter.keras_io import keras_output_names
from parity.exporter.onnx_passes import simplified
from parity.exporter.opsets import DEFAULT_OPSET, check_opset
from parity.exporter.rewrite import repair
from parity.exporter.signature import input_domain
from parity.exporter.token_inputs import token_vocabularies
from parity.exporter.user_code import user_code_error
from parity.runtime.bundle_format.manifest import TensorSpec
from parity.runtime.errors import ParityError, quoted

# onnxruntime 1.31 loads models up to IR version 10; onnx 1.23 writes 14 by default.
MAX_IR_VERSION = 10


@dataclass(frozen=True)
class ConvertedGraph:
    proto: onnx.ModelProto
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def keras_to_onnx(
    model: Any, *, opset: int = DEFAULT_OPSET, dynamic_batch: bool = True
) -> ConvertedGraph:
    """Convert ``model``. With ``dynamic_batch`` False the batch axis is fixed
    to 1 (for runtimes that want static shapes)."""
    import tf2onnx

    check_opset(opset)
    inputs = model_inputs(model)
    names = input_names(model)
    output_names = keras_output_names(model)
    signature = _signature(model, dynamic_batch)
    _refuse_stateful(model)
    traced = repair(model)
    try:
        with _non_cudnn(traced), _quiet_tf2onnx():
            proto, _ = tf2onnx.convert.from_keras(traced, input_signature=signature, opset=opset)
    except ParityError:
        raise
    except Exception as exc:
        reason = user_code_error(exc) or f"tf2onnx cannot convert it: {quoted(exc)}"
        raise ParityError(f"model {model.name!r}: {reason}") from None
    _rename_outputs(proto, output_names)
    _name_dims(proto, axis_names(model, output_names))
    proto.ir_version = min(proto.ir_version, MAX_IR_VERSION)
    proto = checked(proto, model.name)
    vocabularies = token_vocabularies(proto)
    specs_in = tuple(
        _spec(value, _domain(input_domain(model, tensor), vocabularies.get(value.name)))
        for value, tensor in zip(_ordered(proto.graph.input, names), inputs, strict=True)
    )
    specs_out = tuple(_spec(value) for value in _ordered(proto.graph.output, output_names))
    return ConvertedGraph(proto, specs_in, specs_out)


def _signature(model: Any, dynamic_batch: bool = True) -> tuple[Any, ...]:
    """The input signature tf2onnx traces ``model`` with: one ``TensorSpec``
    per input, named as the input, its batch dynamic (or 1)."""
    import tensorflow as tf

    return tuple(
        tf.TensorSpec((None if dynamic_batch else 1, *tensor.shape[1:]), tensor.dtype, name=name)
        for tensor, name in zip(model_inputs(model), input_names(model), strict=True)
    )


def traced_output_names(model: Any) -> list[str | None]:
    """The TensorFlow name of each of ``model``'s outputs in the trace
    :func:`keras_to_onnx` has tf2onnx make of it (``m_1/dense_1/BiasAdd:0``),
    past ``Identity`` ops; None for an output that is a model input.

    tf2onnx names each ONNX tensor after the TensorFlow tensor whose op it
    converts one to one, so these are names in the converted graph wherever
    that op survives conversion and simplification. Only a trace gives them:
    TensorFlow makes name scopes unique, not layer names (layer ``conv2d``
    traces in scope ``conv2d_1``, layer ``conv2d_1`` in ``conv2d_1_2``). The
    trace is tf2onnx 1.17's on TensorFlow 2.16 and later (Keras'
    ``trace_model_call``): a ``tf.function`` with the exporter's input
    signature over the repaired model, called on its one input or on the list
    of them, recurrent layers off cuDNN.

    Args:
        model: a functional model; its outputs may be any tensors of its graph
            (:func:`parity.exporter.keras_graph.exposing`).
    """
    import tensorflow as tf

    signature = _signature(model)
    traced = repair(model)

    @tf.function(input_signature=signature)
    def call(*args: Any) -> Any:
        return traced(args[0] if len(args) == 1 else list(args), training=False)

    with _non_cudnn(traced):
        outputs = call.get_concrete_function().outputs
    names: list[str | None] = []
    for tensor in outputs:
        while tensor.op.type == "Identity" and tensor.op.inputs:
            tensor = tensor.op.inputs[0]
        names.append(None if tensor.op.type == "Placeholder" else tensor.name)
    return names


def _domain(declared: dict[str, Any], vocabulary: int | None) -> dict[str, Any]:
    """An input's value domain: what the Keras model declares, or token ids
    where the graph looks the input up in a table (:mod:`parity.exporter.token_inputs`)."""
    if declared["kind"] == "tokens" or vocabulary is None:
        return declared
    return {"kind": "tokens", "vocab": vocabulary}


def simplified_graph(graph: ConvertedGraph) -> tuple[ConvertedGraph, str | None]:
    """``graph`` simplified (:func:`parity.exporter.onnx_passes.simplified`)
    before it is written, and ``None``; or, where onnx-simplifier fails, ``graph``
    as tf2onnx wrote it and the reason, for the manifest's notes.

    ONNX Runtime pays for every node, and what tf2onnx leaves between layers
    also blocks its own layout passes: a ``TimeDistributed`` ``Conv2D`` and
    ``MaxPooling2D`` come out with a Reshape pair and two Transposes between
    them, so ONNX Runtime converts the convolution's whole output out of and
    back into its blocked layout. Simplified, the seed ``td_cnn_lstm`` ran in
    20 ms rather than 38 ms at batch 1, 232 ms rather than 501 ms at batch 16
    (2-core Intel Xeon, AVX-512). Every value is computed as before."""
    try:
        proto = simplified(graph.proto)
    except ParityError as exc:
        return graph, f"the graph is left as tf2onnx wrote it: {exc}"
    return ConvertedGraph(proto, graph.inputs, graph.outputs), None


def _refuse_stateful(model: Any) -> None:
    """tf2onnx freezes a stateful layer's state into a constant, so the graph
    would silently ignore the state it is meant to carry."""
    for layer in _recurrent_layers(model):
        if getattr(layer, "stateful", False):
            raise ParityError(
                f"layer {layer.name!r} is stateful: its exported state would be frozen into a "
                "constant; rebuild the model with stateful=False and pass the state as "
                "initial_state inputs and return_state outputs"
            )


@contextlib.contextmanager
def _non_cudnn(model: Any) -> Iterator[None]:
    """Trace recurrent layers on their generic path: on a machine with a GPU,
    Keras 3 traces ``use_cudnn="auto"`` to ``CudnnRNNV3``, which tf2onnx
    cannot convert. ``Bidirectional`` keeps its own copies of the layers."""
    changed = []
    for layer in _recurrent_layers(model):
        if not hasattr(layer, "use_cudnn"):  # a SimpleRNN has no cuDNN kernel
            continue
        changed.append((layer, layer.use_cudnn))
        layer.use_cudnn = False
    try:
        yield
    finally:
        for layer, value in changed:
            layer.use_cudnn = value


def _recurrent_layers(model: Any) -> list[Any]:
    """Every recurrent layer of ``model``, nested ones too (``Bidirectional``'s
    copies, a ``TimeDistributed``'s, a nested model's)."""
    return [layer for layer in all_layers(model) if is_recurrent(layer)]


@contextlib.contextmanager
def _quiet_tf2onnx() -> Iterator[None]:
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _rename_outputs(proto: onnx.ModelProto, names: list[str]) -> None:
    graph = proto.graph
    current = [value.name for value in graph.output]
    if current == names:
        return
    if len(current) != len(names):
        raise ParityError(f"the converted graph has outputs {current}, expected {names}")
    mapping = {old: new for old, new in zip(current, names, strict=True) if old != new}
    for node in graph.node:
        node.output[:] = [mapping.get(name, name) for name in node.output]
        node.input[:] = [mapping.get(name, name) for name in node.input]
    for value in graph.output:
        value.name = mapping.get(value.name, value.name)


def _name_dims(proto: onnx.ModelProto, axes: AxisNames) -> None:
    """Write the axis names (or known sizes) of :func:`axis_names` into the graph."""
    named = {**axes.inputs, **axes.outputs}
    for value in list(proto.graph.input) + list(proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        wanted = named.get(value.name)
        for axis, dim in enumerate(dims):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                continue
            name = wanted[axis] if wanted is not None and axis < len(wanted) else None
            if isinstance(name, int):
                dim.dim_value = name
            else:
                dim.dim_param = name or f"{value.name}_dim{axis}"


def checked(proto: onnx.ModelProto, name: str) -> onnx.ModelProto:
    try:
        onnx.checker.check_model(proto, full_check=True)
        return onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        reason = quoted(exc)
        raise ParityError(f"the graph converted from {name!r} is invalid ONNX: {reason}") from None


def _ordered(values: Any, names: list[str]) -> list[Any]:
    by_name = {value.name: value for value in values}
    missing = [name for name in names if name not in by_name]
    if missing:
        raise ParityError(f"the converted graph has no tensor named {missing[0]!r}")
    return [by_name[name] for name in names]


def _spec(value: onnx.ValueInfoProto, domain: dict | None = None) -> TensorSpec:
    tensor = value.type.tensor_type
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name
    shape = tuple(
        dim.dim_value if dim.HasField("dim_value") else dim.dim_param for dim in tensor.shape.dim
    )
    return TensorSpec(value.name, dtype, shape, domain)
