"""One ONNX graph for a whole seq2seq generation: the encoder, then an ONNX
``Loop`` over the step graph.

Running the step graph from Python costs a session call per step, and at
batch 1 that call, not the arithmetic, is most of the time. Composing the
encoder graph and the step graph of a seq2seq bundle (:mod:`exporter.seq2seq`)
into one graph moves the loop into ONNX Runtime: one call generates every step.

The composed graph takes the encoder graph's inputs (same names), :data:`START`
(the first step input, shaped like the step input) and :data:`STEPS` (an int64
scalar), and returns the step outputs stacked batch-major under the step
graph's output name, ``(batch, steps, ...)``. The manifest's feedback rule
(:class:`parity.runtime.bundle_format.manifest.Seq2SeqSpec`) becomes a few nodes of the loop body.

Names are kept apart by prefixes: :data:`ENCODER_PREFIX` for the encoder
graph's (its inputs keep theirs), :data:`STEP_PREFIX` for the step graph's,
:data:`LOOP_PREFIX` for what this module adds. The body is kept small, since
ONNX Runtime pays for every node at every step:

- the step graph's weights, and its nodes that depend on weights alone, live
  in the outer graph (a body reads outer values), so nothing constant is
  re-created or recomputed per step;
- a state that the step graph unsqueezes on entry and squeezes on exit (how
  tf2onnx feeds a fused LSTM or GRU) travels through the loop unsqueezed;
  so does the step input in the layout the step graph reshapes it to;
- the step graph comes simplified, as the exporter writes every graph
  (:func:`parity.exporter.convert.simplified_graph`): a Reshape reads past
  the views before it, a Reshape to the shape its input has goes, and a
  target shape computed from ``Shape`` at every step becomes a constant (with
  -1 for the batch); a step graph the simplifier could not take still
  composes, with a larger body;
- a single-step LSTM, GRU or RNN hands its ``Y_h`` to the next layer rather
  than a reshaped ``Y``, which then is not written
  (:func:`parity.exporter.onnx_passes.read_state_not_sequence`);
- the step output's time axis is squeezed once, after the loop.

Measured on the seed ``sine_seq2seq`` (4 + 4 LSTM(40), 150 steps, a 2-core
CPU): the body went from 19 nodes to 9, and one generation at batch 1 from
3.1 ms to 2.4 ms.

Only ``onnx`` and onnx-simplifier are used here, never TensorFlow: a bundle's
two graphs are enough, and every value is computed as the two graphs that were
checked compute it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import get_args

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from parity.exporter.onnx_nodes import (
    RANDOM_OPS,
    axes_op,
    dims,
    is_view_reshape,
    read_by,
    readers_of,
    subgraphs,
    without_dead,
)
from parity.exporter.onnx_passes import (
    inferred_dims,
    prefixed,
    read_state_not_sequence,
    rename_reads,
)
from parity.runtime.bundle_format.manifest import Feedback, Seq2SeqSpec, TensorSpec
from parity.runtime.errors import ParityError, quoted
from parity.runtime.generate import LOOP_START, LOOP_STEPS

__all__ = [
    "ENCODER_PREFIX",
    "LOOP_GRAPH",
    "LOOP_PREFIX",
    "START",
    "STEPS",
    "STEP_PREFIX",
    "generation_graph",
    "generation_specs",
]

LOOP_GRAPH = "loop"  # the manifest's key for the generation graph
# The runtime feeds these two inputs; the steps input also names the output's time axis.
START = LOOP_START
STEPS = LOOP_STEPS
ENCODER_PREFIX = "encoder/"
STEP_PREFIX = "step/"
LOOP_PREFIX = "loop/"
# onnxruntime 1.31 loads models up to IR version 10; onnx 1.23 writes 14 by default.
MAX_IR_VERSION = 10
# The nodes added here use Squeeze with an axes input, which came with opset 13.
MIN_OPSET = 13


def generation_graph(
    encoder: onnx.ModelProto, step: onnx.ModelProto, spec: Seq2SeqSpec, *, opset: int
) -> onnx.ModelProto:
    """Compose ``encoder`` and ``step``, wired as ``spec`` says, into one model
    that runs the encoder once and the step graph ``steps`` times in a ``Loop``.

    Both graphs must import ``opset`` for the default domain (the composed
    graph imports the same, so that no node changes meaning). The body is as
    small as ``step`` allows: pass it simplified, as the exporter writes it.
    The result
    passes ``onnx.checker.check_model(full_check=True)``. Raises
    :class:`ParityError` when the graphs do not fit ``spec`` or each other."""
    _check_wiring(encoder.graph, step.graph, spec)
    opsets = _opset_imports(encoder, step, opset)
    ir_version = max(encoder.ir_version, step.ir_version)
    if ir_version > MAX_IR_VERSION:
        raise ParityError(
            f"encoder/step graph: IR version {ir_version}; ONNX Runtime loads up to "
            f"{MAX_IR_VERSION}"
        )
    enc = prefixed(encoder.graph, ENCODER_PREFIX, rename_inputs=False)
    stp = prefixed(step.graph, STEP_PREFIX)
    known = inferred_dims(stp, opsets, _functions(encoder, step))
    # A memory is the same at every step: the body reads the encoder's value
    # from the outer graph, and what depends on it alone runs once, outside.
    memories = {_step(m.step_input): _enc(m.encoder_output) for m in spec.memories}
    rename_reads(list(stp.node), memories)
    kept = [value for value in stp.input if value.name not in memories]
    del stp.input[:]
    stp.input.extend(kept)

    outer = _Outer()
    outer.nodes.extend(enc.node)
    hoisted, body_nodes = _split_invariant(stp, set(memories.values()))
    outer.nodes.extend(hoisted)
    initial = [
        _enc(state.encoder_output)
        if state.init == "encoder"
        else outer.zeros(state.size, _value(step.graph, state.step_input))
        for state in spec.states
    ]
    body, carries, layout = _loop_body(stp, body_nodes, step.graph, spec, outer, known)
    start = START
    if layout is not None:
        start = LOOP_PREFIX + "initial/" + spec.step_input
        outer.nodes.append(helper.make_node("Reshape", [START, layout], [start]))
    for index, (state, carry) in enumerate(zip(spec.states, carries, strict=True)):
        if carry.axes is not None:
            unsqueezed = f"{LOOP_PREFIX}initial/{state.name}"
            outer.nodes.append(
                helper.make_node("Unsqueeze", [initial[index], carry.axes], [unsqueezed])
            )
            initial[index] = unsqueezed

    finals = [f"{LOOP_PREFIX}final/{name}" for name in (spec.step_input, *_state_inputs(spec))]
    by_step = LOOP_PREFIX + "outputs_by_step"
    outer.nodes.append(
        helper.make_node(
            "Loop",
            [STEPS, outer.constant("true", np.array(True)), start, *initial],
            [*finals, by_step],
            name=LOOP_PREFIX + "generate",
            body=body,
        )
    )
    output = _value(step.graph, spec.step_output)
    output_dims = dims(output.type.tensor_type.shape.dim)
    # The body emits the step output as it is, (batch, 1, ...): its time axis
    # goes here, once, rather than by a Squeeze at every step.
    batch_major = LOOP_PREFIX + "batch_major"
    outer.nodes.append(
        helper.make_node(
            "Transpose",
            [by_step],
            [batch_major],
            name=batch_major,
            perm=[1, 0, *range(2, len(output_dims) + 1)],
        )
    )
    outer.nodes.append(
        helper.make_node(
            "Squeeze",
            [batch_major, outer.constant("step_time_axis", np.array([2], np.int64))],
            [spec.step_output],
            name=LOOP_PREFIX + "without_time_axis",
        )
    )

    computed = {name for node in outer.nodes for name in node.output}
    graph = helper.make_graph(
        outer.nodes,
        f"{encoder.graph.name or 'encoder'}_{step.graph.name or 'step'}_generation",
        [
            *encoder.graph.input,
            _typed(START, _value(step.graph, spec.step_input).type),
            helper.make_tensor_value_info(STEPS, TensorProto.INT64, []),
        ],
        [
            helper.make_tensor_value_info(
                spec.step_output, _elem_type(output), [output_dims[0], STEPS, *output_dims[2:]]
            )
        ],
        initializer=read_by(outer.nodes, enc.initializer, stp.initializer, outer.constants),
        sparse_initializer=[*enc.sparse_initializer, *stp.sparse_initializer],
        value_info=[
            value
            for value in _unique(enc.value_info, enc.output, stp.value_info)
            if value.name in computed
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        ir_version=ir_version,
        producer_name="parity",
        doc_string="seq2seq generation: the encoder once, then a Loop over the step graph",
        functions=_functions(encoder, step),
    )
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = quoted(exc, 400)
        raise ParityError(f"generation graph: not a valid ONNX graph ({first})") from None
    return model


def generation_specs(
    encoder_inputs: Sequence[TensorSpec],
    step_inputs: Sequence[TensorSpec],
    step_outputs: Sequence[TensorSpec],
    spec: Seq2SeqSpec,
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The manifest's inputs and outputs of the generation graph, from those of
    the encoder and step graphs: the encoder inputs, :data:`START` (like the
    step input, with its value domain) and :data:`STEPS`; the step output with
    a ``steps`` axis in place of its length-1 time axis."""
    (step_input,) = [s for s in step_inputs if s.name == spec.step_input]
    (step_output,) = [s for s in step_outputs if s.name == spec.step_output]
    inputs = (
        *encoder_inputs,
        TensorSpec(START, step_input.dtype, step_input.shape, step_input.domain),
        TensorSpec(STEPS, "int64", ()),
    )
    shape = (step_output.shape[0], STEPS, *step_output.shape[2:])
    return inputs, (TensorSpec(step_output.name, step_output.dtype, shape),)


# --- checks ---------------------------------------------------------------------


def _check_wiring(encoder: onnx.GraphProto, step: onnx.GraphProto, spec: Seq2SeqSpec) -> None:
    """Every name the spec gives must be in the graphs, the step graph must take
    nothing but the step input and the states, and the composed graph's own
    names must not collide."""
    if spec.feedback not in get_args(Feedback):
        raise ParityError(
            f"feedback rule {spec.feedback!r} is unknown (known: {', '.join(get_args(Feedback))})"
        )
    step_inputs = [value.name for value in step.input]
    step_outputs = [value.name for value in step.output]
    encoder_outputs = [value.name for value in encoder.output]
    wanted = [spec.step_input, *_state_inputs(spec), *(m.step_input for m in spec.memories)]
    if sorted(step_inputs) != sorted(wanted):
        raise ParityError(
            f"step graph: takes inputs {step_inputs}, not the step input, the states and the "
            f"memories {wanted}"
        )
    for memory in spec.memories:
        if memory.encoder_output not in encoder_outputs:
            raise ParityError(
                f"encoder graph: no output {memory.encoder_output!r} for memory {memory.name!r}"
            )
    for name in (spec.step_output, *(state.step_output for state in spec.states)):
        if name not in step_outputs:
            raise ParityError(f"step graph: no output {name!r} (has: {', '.join(step_outputs)})")
    for state in spec.states:
        if state.init not in ("encoder", "zeros"):
            raise ParityError(f"state {state.name!r}: unknown init {state.init!r}")
        if state.init == "encoder" and state.encoder_output not in encoder_outputs:
            raise ParityError(
                f"encoder graph: no output {state.encoder_output!r} for state {state.name!r} "
                f"(has: {', '.join(encoder_outputs)})"
            )
    for name in (spec.step_input, spec.step_output):
        if len(_value(step, name).type.tensor_type.shape.dim) < 2:
            raise ParityError(f"step graph: {name!r} is not shaped (batch, 1, ...)")
    if spec.feedback == "identity" and _elem_type(_value(step, spec.step_input)) != _elem_type(
        _value(step, spec.step_output)
    ):
        raise ParityError(
            f"feedback 'identity': step output {spec.step_output!r} and step input "
            f"{spec.step_input!r} differ in dtype"
        )
    external = [*(value.name for value in encoder.input), START, STEPS, spec.step_output]
    if len(set(external)) != len(external):
        raise ParityError(
            f"generation graph: names collide among the encoder inputs, {START!r}, {STEPS!r} "
            f"and the output {spec.step_output!r}"
        )
    for name in external:
        if name.startswith((ENCODER_PREFIX, STEP_PREFIX, LOOP_PREFIX)):
            raise ParityError(f"generation graph: name {name!r} starts with a reserved prefix")


def _opset_imports(
    encoder: onnx.ModelProto, step: onnx.ModelProto, opset: int
) -> list[onnx.OperatorSetIdProto]:
    """The union of both graphs' opset imports. The default domain must be
    ``opset`` in both: a node's meaning may change from one opset to another."""
    if opset < MIN_OPSET:
        raise ParityError(f"opset {opset}: the generation graph needs opset {MIN_OPSET} or later")
    versions: dict[str, int] = {}
    for what, model in (("encoder", encoder), ("step", step)):
        for entry in model.opset_import:
            domain = "" if entry.domain == "ai.onnx" else entry.domain
            if domain == "" and entry.version != opset:
                raise ParityError(
                    f"{what} graph: imports opset {entry.version}, the generation graph is "
                    f"made at opset {opset}"
                )
            if versions.setdefault(domain, entry.version) != entry.version:
                raise ParityError(
                    f"{what} graph: imports {domain} version {entry.version}, the other graph "
                    f"version {versions[domain]}"
                )
    versions[""] = opset
    return [helper.make_opsetid(domain, version) for domain, version in sorted(versions.items())]


def _functions(encoder: onnx.ModelProto, step: onnx.ModelProto) -> list[onnx.FunctionProto]:
    functions: dict[tuple[str, str], onnx.FunctionProto] = {}
    for function in (*encoder.functions, *step.functions):
        key = (function.domain, function.name)
        if functions.setdefault(key, function) != function:
            raise ParityError(
                f"encoder and step graphs define function {function.domain}:{function.name} "
                "differently"
            )
    return list(functions.values())


def _enc(name: str) -> str:
    return ENCODER_PREFIX + name


def _step(name: str) -> str:
    return STEP_PREFIX + name


# --- the outer graph ------------------------------------------------------------


class _Outer:
    """The outer graph's nodes and small constants, each constant named once."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.constants: list[onnx.TensorProto] = []

    def constant(self, name: str, value: np.ndarray) -> str:
        full = LOOP_PREFIX + name
        if all(tensor.name != full for tensor in self.constants):
            self.constants.append(numpy_helper.from_array(np.asarray(value), full))
        return full

    def zeros(self, size: int, like: onnx.ValueInfoProto) -> str:
        """Zeros of shape (batch, size) and the dtype of ``like``, the batch
        taken from :data:`START` at run time; one tensor per size and dtype."""
        dtype = helper.tensor_dtype_to_np_dtype(_elem_type(like))
        name = f"{LOOP_PREFIX}zeros_{size}_{np.dtype(dtype).name}"
        made = {output for node in self.nodes for output in node.output}
        if name in made:
            return name
        batch = LOOP_PREFIX + "batch"
        if batch not in made:
            start_shape = LOOP_PREFIX + "start_shape"
            first = self.constant("first", np.array([0], np.int64))
            second = self.constant("second", np.array([1], np.int64))
            self.nodes.append(helper.make_node("Shape", [START], [start_shape]))
            self.nodes.append(helper.make_node("Slice", [start_shape, first, second], [batch]))
        width = self.constant(f"size_{size}", np.array([size], np.int64))
        shape = name + "_shape"
        zero = numpy_helper.from_array(np.zeros(1, dtype))
        self.nodes.append(helper.make_node("Concat", [batch, width], [shape], axis=0))
        self.nodes.append(helper.make_node("ConstantOfShape", [shape], [name], value=zero))
        return name


def _split_invariant(
    graph: onnx.GraphProto, outer_values: set[str]
) -> tuple[list[onnx.NodeProto], list[onnx.NodeProto]]:
    """Split the step graph's nodes into those that depend on weights and
    ``outer_values`` alone (the same at every step: they go to the outer graph)
    and the rest."""
    invariant = {tensor.name for tensor in graph.initializer} | outer_values
    invariant.update(sparse.values.name for sparse in graph.sparse_initializer)
    hoisted, body = [], []
    for node in graph.node:
        if (
            node.domain in ("", "ai.onnx")
            and node.op_type not in RANDOM_OPS
            and not any(subgraphs(attribute) for attribute in node.attribute)
            and all(name in invariant for name in node.input if name)
        ):
            hoisted.append(node)
            invariant.update(name for name in node.output if name)
        else:
            body.append(node)
    return hoisted, body


# --- the loop body --------------------------------------------------------------


@dataclass(frozen=True)
class _Carry:
    """How one state travels through the ``Loop``: the body input that holds
    it, the body value that becomes the next iteration's input (and its type),
    and the axes (an initializer's name) to unsqueeze the state's first value
    with when it travels in the layout the step graph unsqueezes it to."""

    body_input: onnx.ValueInfoProto
    body_output: str
    output_type: onnx.TypeProto
    axes: str | None = None


def _loop_body(
    stp: onnx.GraphProto,
    nodes: list[onnx.NodeProto],
    step: onnx.GraphProto,
    spec: Seq2SeqSpec,
    outer: _Outer,
    known: dict[str, list[int | None]],
) -> tuple[onnx.GraphProto, list[_Carry], str | None]:
    """The ``Loop`` body, (iteration, cond, x, states) -> (cond, next x,
    new states, step output), how it carries each state, and the constant
    shape the step input travels reshaped to (None: as the step graph takes
    it). ``stp`` is the prefixed step graph, ``nodes`` its nodes that stay in
    the body, ``known`` the dims shape inference found for its values."""
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in stp.initializer}
    nodes, carries = _carries(stp, nodes, spec, constants)
    output = _step(spec.step_output)
    x_input = _value(stp, _step(spec.step_input))
    next_x = _feedback(spec, step, output, outer, nodes)
    nodes, x_input, next_x, layout = _carry_input_reshaped(nodes, x_input, next_x, constants, known)
    keep = {output, next_x, *(carry.body_output for carry in carries)}
    read_state_not_sequence(nodes, constants, known, keep)
    nodes = without_dead(nodes, keep)

    iteration, cond_in, cond_out = (LOOP_PREFIX + n for n in ("iteration", "cond_in", "cond_out"))
    nodes.append(helper.make_node("Identity", [cond_in], [cond_out], name=cond_out))
    wanted = [
        (next_x, "next_input"),
        *(
            (carry.body_output, f"state/{state.name}")
            for state, carry in zip(spec.states, carries, strict=True)
        ),
        (output, "step_output"),
    ]
    carried_out: list[str] = []
    produced = {name for node in nodes for name in node.output}
    for name, label in wanted:
        if name not in produced or name in carried_out:
            # A body output must be a value the body computes, and each once.
            copy = LOOP_PREFIX + label
            nodes.append(helper.make_node("Identity", [name], [copy], name=copy))
            name = copy
        carried_out.append(name)

    output_type = _value(stp, output).type
    inputs = [
        helper.make_tensor_value_info(iteration, TensorProto.INT64, []),
        helper.make_tensor_value_info(cond_in, TensorProto.BOOL, []),
        x_input,
        *(carry.body_input for carry in carries),
    ]
    outputs = [
        helper.make_tensor_value_info(cond_out, TensorProto.BOOL, []),
        _typed(carried_out[0], x_input.type),
        *(
            _typed(name, carry.output_type)
            for name, carry in zip(carried_out[1:-1], carries, strict=True)
        ),
        _typed(carried_out[-1], output_type),
    ]
    inner = {name for node in nodes for name in node.output} - {v.name for v in outputs}
    value_info = [v for v in _unique(stp.value_info, stp.output) if v.name in inner]
    graph = helper.make_graph(nodes, "generation_step", inputs, outputs, value_info=value_info)
    return graph, carries, layout


def _carries(
    stp: onnx.GraphProto,
    nodes: list[onnx.NodeProto],
    spec: Seq2SeqSpec,
    constants: dict[str, np.ndarray],
) -> tuple[list[onnx.NodeProto], list[_Carry]]:
    """The body's nodes and how each state is carried.

    tf2onnx's step graphs take a state as (batch, size), unsqueeze it to the
    fused recurrent op's (1, batch, size) and squeeze the new state back. When
    a state's only reader is such an Unsqueeze and its new value comes from a
    Squeeze on the same constant axes that nothing else reads, the state is
    carried unsqueezed and both nodes leave the body: the same values, two
    nodes fewer per state and step. Otherwise it is carried as the step graph
    has it."""
    inputs = {value.name: value for value in stp.input}
    outputs = {value.name: value for value in stp.output}
    types = {value.name: value.type for value in (*stp.value_info, *stp.output)}
    readers = readers_of(nodes)
    producer = {name: node for node in nodes for name in node.output}
    taken = [_step(spec.step_output), *(_step(state.step_output) for state in spec.states)]
    removed: set[int] = set()
    carries = []
    for state in spec.states:
        name_in, name_out = _step(state.step_input), _step(state.step_output)
        carry = _Carry(inputs[name_in], name_out, outputs[name_out].type)
        found = readers.get(name_in, [])
        unsqueeze = found[0] if len(found) == 1 else None
        squeeze = producer.get(name_out)
        if (
            axes_op(unsqueeze, "Unsqueeze", constants)
            and axes_op(squeeze, "Squeeze", constants)
            and unsqueeze.input[0] == name_in
            and np.array_equal(constants[unsqueeze.input[1]], constants[squeeze.input[1]])
            and name_out not in readers
            and taken.count(name_out) == 1
            and squeeze.input[0] not in inputs
            and not {id(unsqueeze), id(squeeze)} & removed
        ):
            tensor = inputs[name_in].type.tensor_type
            shape = _unsqueezed(dims(tensor.shape.dim), constants[unsqueeze.input[1]])
            body_input = helper.make_tensor_value_info(unsqueeze.output[0], tensor.elem_type, shape)
            output_type = types.get(squeeze.input[0], body_input.type)
            carry = _Carry(body_input, squeeze.input[0], output_type, unsqueeze.input[1])
            removed |= {id(unsqueeze), id(squeeze)}
        carries.append(carry)
    return [node for node in nodes if id(node) not in removed], carries


def _carry_input_reshaped(
    nodes: list[onnx.NodeProto],
    x_input: onnx.ValueInfoProto,
    next_x: str,
    constants: dict[str, np.ndarray],
    known: dict[str, list[int | None]],
) -> tuple[list[onnx.NodeProto], onnx.ValueInfoProto, str, str | None]:
    """When the step input's only reader is a Reshape to a constant shape (how
    tf2onnx feeds (batch, 1, F) to a fused recurrent op as (1, batch, F)), the
    input travels reshaped: that Reshape runs once on the start value, before
    the loop, and the body reshapes the next input instead.
    Returns the nodes, the body's input and next input, and the shape (None
    when the input travels as it is)."""
    readers = readers_of(nodes)
    found = readers.get(x_input.name, [])
    reshape = found[0] if len(found) == 1 else None
    if not is_view_reshape(reshape, constants) or reshape.input[0] != x_input.name:
        return nodes, x_input, next_x, None
    layout = reshape.input[1]
    shape = known.get(reshape.output[0], [None] * len(constants[layout]))
    body_input = helper.make_tensor_value_info(reshape.output[0], _elem_type(x_input), shape)
    reshaped = LOOP_PREFIX + "next_input_reshaped"
    kept = [node for node in nodes if node is not reshape]
    kept.append(helper.make_node("Reshape", [next_x, layout], [reshaped], name=reshaped))
    return kept, body_input, reshaped, layout


def _feedback(
    spec: Seq2SeqSpec,
    step: onnx.GraphProto,
    output: str,
    outer: _Outer,
    nodes: list[onnx.NodeProto],
) -> str:
    """Append the nodes that make the next step input from the step output
    ``output`` by the feedback rule; return the next input's name."""
    x_type = _value(step, spec.step_input).type.tensor_type
    if spec.feedback == "identity":
        return output
    token, next_x = LOOP_PREFIX + "token", LOOP_PREFIX + "next_input"
    nodes.append(helper.make_node("ArgMax", [output], [token], name=token, axis=-1, keepdims=0))
    if spec.feedback == "argmax_token":
        nodes.append(helper.make_node("Cast", [token], [next_x], name=next_x, to=x_type.elem_type))
        return next_x
    depth = dims(x_type.shape.dim)[-1]
    if not isinstance(depth, int):
        depth = dims(_value(step, spec.step_output).type.tensor_type.shape.dim)[-1]
    if not isinstance(depth, int):
        raise ParityError(
            f"feedback 'argmax_onehot': step input {spec.step_input!r} has no fixed size"
        )
    dtype = helper.tensor_dtype_to_np_dtype(x_type.elem_type)
    depth_name = outer.constant(f"depth_{depth}", np.array(depth, np.int64))
    values = outer.constant(f"onehot_{np.dtype(dtype).name}", np.array([0, 1], dtype))
    nodes.append(
        helper.make_node("OneHot", [token, depth_name, values], [next_x], name=next_x, axis=-1)
    )
    return next_x


# --- small helpers --------------------------------------------------------------


def _state_inputs(spec: Seq2SeqSpec) -> list[str]:
    return [state.step_input for state in spec.states]


def _value(graph: onnx.GraphProto, name: str) -> onnx.ValueInfoProto:
    for value in (*graph.input, *graph.output):
        if value.name == name:
            return value
    raise ParityError(f"graph {graph.name!r}: no input or output {name!r}")


def _elem_type(value: onnx.ValueInfoProto) -> int:
    return value.type.tensor_type.elem_type


def _typed(name: str, type_proto: onnx.TypeProto) -> onnx.ValueInfoProto:
    value = onnx.ValueInfoProto()
    value.name = name
    value.type.CopyFrom(type_proto)
    return value


def _unsqueezed(dims: list[int | str | None], axes: np.ndarray) -> list[int | str | None]:
    """``dims`` after ``Unsqueeze`` on ``axes``."""
    rank = len(dims) + len(axes)
    ones = {int(axis) % rank for axis in axes}
    rest = iter(dims)
    return [1 if axis in ones else next(rest) for axis in range(rank)]


def _unique(*groups: Iterable[onnx.ValueInfoProto]) -> list[onnx.ValueInfoProto]:
    """Value infos, each name once (the first wins)."""
    seen: set[str] = set()
    kept = []
    for group in groups:
        for value in group:
            if value.name not in seen:
                seen.add(value.name)
                kept.append(value)
    return kept
