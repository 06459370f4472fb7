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
- a Reshape reads past the Squeeze, Unsqueeze or Reshape before it, a
  Reshape to the shape its input has goes, and a target shape computed from
  ``Shape`` at every step becomes a constant (with -1 for the batch);
- a single-step LSTM, GRU or RNN hands its ``Y_h`` to the next layer rather
  than a reshaped ``Y``, which then is not written;
- the step output's time axis is squeezed once, after the loop.

Measured on the seed ``sine_seq2seq`` (4 + 4 LSTM(40), 150 steps, a 2-core
CPU): the body went from 19 nodes to 9, and one generation at batch 1 from
3.1 ms to 2.4 ms.

Only ``onnx`` is used here, never TensorFlow: a bundle's two graphs are enough,
and the nodes that run are those the two graphs were checked with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from parity.exporter.onnx_nodes import (
    RANDOM_OPS,
    RECURRENT_OPS,
    read_by,
    readers_of,
    subgraphs,
    without_dead,
)
from parity.runtime.bundle_format.manifest import Seq2SeqSpec, TensorSpec
from parity.runtime.errors import ParityError
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
FEEDBACKS = ("identity", "argmax_onehot", "argmax_token")


def generation_graph(
    encoder: onnx.ModelProto, step: onnx.ModelProto, spec: Seq2SeqSpec, *, opset: int
) -> onnx.ModelProto:
    """Compose ``encoder`` and ``step``, wired as ``spec`` says, into one model
    that runs the encoder once and the step graph ``steps`` times in a ``Loop``.

    Both graphs must import ``opset`` for the default domain (the composed
    graph imports the same, so that no node changes meaning). The result
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
    encoder_inputs = {value.name for value in encoder.graph.input}
    enc = _renamed(encoder.graph, lambda name: name if name in encoder_inputs else _enc(name))
    stp = _renamed(step.graph, _step)

    outer = _Outer()
    outer.nodes.extend(enc.node)
    hoisted, body_nodes = _split_invariant(stp)
    outer.nodes.extend(hoisted)
    initial = [
        _enc(state.encoder_output)
        if state.init == "encoder"
        else outer.zeros(state.size, _value(step.graph, state.step_input))
        for state in spec.states
    ]
    known = _inferred_dims(stp, opsets, _functions(encoder, step))
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
    dims = _dims(output.type.tensor_type.shape.dim)
    # The body emits the step output as it is, (batch, 1, ...): its time axis
    # goes here, once, rather than by a Squeeze at every step.
    batch_major = LOOP_PREFIX + "batch_major"
    outer.nodes.append(
        helper.make_node(
            "Transpose",
            [by_step],
            [batch_major],
            name=batch_major,
            perm=[1, 0, *range(2, len(dims) + 1)],
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
                spec.step_output, _elem_type(output), [dims[0], STEPS, *dims[2:]]
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
        first = " ".join(str(exc).split())[:400]
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
    if spec.feedback not in FEEDBACKS:
        raise ParityError(
            f"feedback rule {spec.feedback!r} is unknown (known: {', '.join(FEEDBACKS)})"
        )
    step_inputs = [value.name for value in step.input]
    step_outputs = [value.name for value in step.output]
    encoder_outputs = [value.name for value in encoder.output]
    wanted = [spec.step_input, *_state_inputs(spec)]
    if sorted(step_inputs) != sorted(wanted):
        raise ParityError(
            f"step graph: takes inputs {step_inputs}, not the step input and the states {wanted}"
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


# --- renaming -------------------------------------------------------------------


def _enc(name: str) -> str:
    return ENCODER_PREFIX + name


def _step(name: str) -> str:
    return STEP_PREFIX + name


def _renamed(graph: onnx.GraphProto, rename: Callable[[str], str]) -> onnx.GraphProto:
    """A copy of ``graph`` with every value and node name mapped by ``rename``,
    inside subgraphs too (a subgraph may read any name of the graphs around it,
    and ONNX names are unique across all of them). Empty names (absent optional
    inputs) stay empty."""
    copy = onnx.GraphProto()
    copy.CopyFrom(graph)
    _rename_in_place(copy, rename)
    return copy


def _rename_in_place(graph: onnx.GraphProto, rename: Callable[[str], str]) -> None:
    def new(name: str) -> str:
        return rename(name) if name else name

    for value in (*graph.input, *graph.output, *graph.value_info):
        value.name = new(value.name)
    for tensor in graph.initializer:
        tensor.name = new(tensor.name)
    for sparse in graph.sparse_initializer:
        sparse.values.name = new(sparse.values.name)
        sparse.indices.name = new(sparse.indices.name)
    for node in graph.node:
        node.input[:] = [new(name) for name in node.input]
        node.output[:] = [new(name) for name in node.output]
        node.name = new(node.name)
        for attribute in node.attribute:
            for subgraph in subgraphs(attribute):
                _rename_in_place(subgraph, rename)


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


def _split_invariant(graph: onnx.GraphProto) -> tuple[list[onnx.NodeProto], list[onnx.NodeProto]]:
    """Split the step graph's nodes into those that depend on weights alone
    (the same at every step: they go to the outer graph) and the rest."""
    invariant = {tensor.name for tensor in graph.initializer}
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


def _inferred_dims(
    stp: onnx.GraphProto,
    opsets: list[onnx.OperatorSetIdProto],
    functions: list[onnx.FunctionProto],
) -> dict[str, list[int | None]]:
    """The dims of the step graph's values, from ONNX shape inference: an int
    where fixed, None where unknown (a symbolic dim such as the batch is
    unknown: the body passes only rely on fixed dims and on -1). Values whose
    rank is unknown are left out; so is everything if inference fails."""
    model = helper.make_model(stp, opset_imports=opsets, functions=functions)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError, RuntimeError):
        inferred = stp  # the graph's own value infos, where it has them
    known = {}
    for value in (*inferred.input, *inferred.value_info, *inferred.output):
        tensor = value.type.tensor_type
        if tensor.HasField("shape"):
            dims = _dims(tensor.shape.dim)
            known[value.name] = [dim if isinstance(dim, int) else None for dim in dims]
    return known


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
    it). ``stp`` is the renamed step graph, ``nodes`` its nodes that stay in
    the body, ``known`` the dims shape inference found for its values."""
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in stp.initializer}
    nodes, carries = _carries(stp, nodes, spec, constants)
    output = _step(spec.step_output)
    x_input = _value(stp, _step(spec.step_input))
    next_x = _feedback(spec, step, output, outer, nodes)
    nodes, x_input, next_x, layout = _carry_input_reshaped(nodes, x_input, next_x, constants, known)
    keep = {output, next_x, *(carry.body_output for carry in carries)}
    nodes = _simplified(nodes, constants, known, keep, outer)

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
            _axes_op(unsqueeze, "Unsqueeze", constants)
            and _axes_op(squeeze, "Squeeze", constants)
            and unsqueeze.input[0] == name_in
            and np.array_equal(constants[unsqueeze.input[1]], constants[squeeze.input[1]])
            and name_out not in readers
            and taken.count(name_out) == 1
            and squeeze.input[0] not in inputs
            and not {id(unsqueeze), id(squeeze)} & removed
        ):
            tensor = inputs[name_in].type.tensor_type
            shape = _unsqueezed(_dims(tensor.shape.dim), constants[unsqueeze.input[1]])
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
    the loop, and the body reshapes the next input instead, a Reshape that the
    layout passes can then merge with the one that made the step output.
    Returns the nodes, the body's input and next input, and the shape (None
    when the input travels as it is)."""
    readers = readers_of(nodes)
    found = readers.get(x_input.name, [])
    reshape = found[0] if len(found) == 1 else None
    if not _is_view_reshape(reshape, constants) or reshape.input[0] != x_input.name:
        return nodes, x_input, next_x, None
    layout = reshape.input[1]
    dims = known.get(reshape.output[0], [None] * len(constants[layout]))
    body_input = helper.make_tensor_value_info(reshape.output[0], _elem_type(x_input), dims)
    reshaped = LOOP_PREFIX + "next_input_reshaped"
    kept = [node for node in nodes if node is not reshape]
    kept.append(helper.make_node("Reshape", [next_x, layout], [reshaped], name=reshaped))
    return kept, body_input, reshaped, layout


# --- simplifying the body -------------------------------------------------------
# Every pass keeps each remaining value's shape and elements; each only changes
# which value a node reads, or drops nodes nothing reads any more.

_VIEW_OPS = ("Reshape", "Squeeze", "Unsqueeze")


def _simplified(
    nodes: list[onnx.NodeProto],
    constants: dict[str, np.ndarray],
    known: dict[str, list[int | None]],
    keep: set[str],
    outer: _Outer,
) -> list[onnx.NodeProto]:
    """The body's nodes with the layout-only work ONNX Runtime would redo at
    every step taken out: shapes computed from ``Shape`` chains become
    constants, chains of views collapse into one Reshape, single-step
    recurrent ops hand on their final state rather than a reshaped ``Y``,
    Reshapes to the shape a value already has go, and what nothing reads
    goes. ``keep`` names the values the body must still produce."""
    _fold_shape_chains(nodes, constants, known, outer)
    _read_state_not_sequence(nodes, constants, known, keep)
    _merge_view_chains(nodes, constants)
    nodes = without_dead(nodes, keep)
    nodes = _without_noop_reshapes(nodes, constants, known, keep)
    return without_dead(nodes, keep)


def _fold_shape_chains(
    nodes: list[onnx.NodeProto],
    constants: dict[str, np.ndarray],
    known: dict[str, list[int | None]],
    outer: _Outer,
) -> None:
    """A Reshape whose target shape the body computes (tf2onnx's Dense reads
    its input's Shape, Gathers and Concats at every step) reads a constant
    instead when every target dim but one is known: that one becomes -1, which
    Reshape resolves to the same value from the element count."""
    producer = {name: node for node in nodes for name in node.output}
    for node in nodes:
        if node.op_type != "Reshape" or node.domain not in ("", "ai.onnx"):
            continue
        if len(node.input) != 2 or node.input[1] in constants:
            continue
        if any(attr.name == "allowzero" and attr.i for attr in node.attribute):
            continue
        target = _shape_value(node.input[1], producer, constants, known)
        if target is None or 0 in target or target.count(None) + target.count(-1) > 1:
            continue
        shape = np.array([-1 if dim is None else dim for dim in target], np.int64)
        name = outer.constant("shape_" + "_".join(str(dim) for dim in shape), shape)
        constants[name] = shape
        node.input[1] = name


def _shape_value(
    name: str,
    producer: dict[str, onnx.NodeProto],
    constants: dict[str, np.ndarray],
    known: dict[str, list[int | None]],
    depth: int = 0,
) -> list[int | None] | None:
    """The value of a 1-D integer tensor made by Shape, Cast, Gather, Concat
    and Slice from constants and the dims of ``known`` values, None where a
    dim is unknown; None when it cannot be worked out."""
    if name in constants:
        value = constants[name]
        ok = value.ndim <= 1 and value.dtype.kind in "iu"
        return [int(v) for v in np.atleast_1d(value)] if ok else None
    node = producer.get(name)
    if node is None or depth > 16 or node.domain not in ("", "ai.onnx"):
        return None
    if node.op_type == "Shape" and not node.attribute:
        return known.get(node.input[0])
    parts = [_shape_value(i, producer, constants, known, depth + 1) for i in node.input if i]
    if any(part is None for part in parts):
        return None
    if node.op_type == "Cast":
        return parts[0]
    if node.op_type == "Concat":
        return [dim for part in parts for dim in part]
    if (
        node.op_type == "Gather"
        and node.input[1] in constants
        and constants[node.input[1]].ndim == 1
    ):
        try:
            return [parts[0][int(i)] for i in constants[node.input[1]]]
        except IndexError:
            return None
    if node.op_type == "Slice" and len(parts) >= 3 and all(len(p) == 1 for p in parts[1:]):
        if len(parts) >= 4 and parts[3][0] not in (0, -1):
            return None
        step = parts[4][0] if len(parts) == 5 else 1
        if None in (parts[1][0], parts[2][0], step) or step == 0:
            return None
        return parts[0][parts[1][0] : parts[2][0] : step]
    return None


def _read_state_not_sequence(
    nodes: list[onnx.NodeProto],
    constants: dict[str, np.ndarray],
    known: dict[str, list[int | None]],
    keep: set[str],
) -> None:
    """A one-direction LSTM, GRU or RNN that runs one time step returns the
    same elements twice: ``Y`` (1, 1, batch, hidden) and ``Y_h`` (1, batch,
    hidden). A Reshape of ``Y`` to a constant shape reads ``Y_h`` instead,
    and what reads a Squeeze of ``Y``'s axis 0 or 1 (which is ``Y_h``) reads
    ``Y_h`` itself; ``Y_h`` often already has the layout that the Reshape
    gives (the next stacked layer's input), and ``Y`` need not be written."""
    readers = readers_of(nodes)
    rename: dict[str, str] = {}
    for node in nodes:
        if not _single_step_rnn(node, known) or len(node.output) < 2 or not node.output[1]:
            continue
        for reader in readers.get(node.output[0], []):
            if reader.input[0] != node.output[0]:
                continue
            if _is_view_reshape(reader, constants):
                reader.input[0] = node.output[1]
            elif _squeezes_leading(reader, constants) and reader.output[0] not in keep:
                rename[reader.output[0]] = node.output[1]
    _rename_reads(nodes, rename)


def _single_step_rnn(node: onnx.NodeProto, known: dict[str, list[int | None]]) -> bool:
    """A one-direction recurrent op in the time-major layout, without
    sequence lengths, whose input has one time step."""
    attributes = {attr.name: attr for attr in node.attribute}
    direction = attributes["direction"].s if "direction" in attributes else b"forward"
    layout = attributes["layout"].i if "layout" in attributes else 0
    return (
        node.op_type in RECURRENT_OPS
        and node.domain in ("", "ai.onnx")
        and direction != b"bidirectional"
        and layout == 0
        and (len(node.input) < 5 or not node.input[4])
        and known.get(node.input[0], [None])[0] == 1
    )


def _squeezes_leading(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> bool:
    """A Squeeze of axis 0 or 1 alone: from (1, 1, b, h) both give (1, b, h)."""
    return _axes_op(node, "Squeeze", constants) and [
        int(a) for a in np.atleast_1d(constants[node.input[1]])
    ] in ([0], [1])


def _merge_view_chains(nodes: list[onnx.NodeProto], constants: dict[str, np.ndarray]) -> None:
    """A Reshape to a constant shape reads past the Squeeze, Unsqueeze or
    Reshape that made its input: none of them moves an element, so the result
    is the same tensor (tf2onnx puts a Squeeze before the Reshape between
    stacked recurrent ops, and a Reshape before the Dense's Reshape). The node
    read past goes when nothing else reads it."""
    changed = True
    while changed:
        changed = False
        producer = {name: node for node in nodes for name in node.output}
        for node in nodes:
            before = producer.get(node.input[0]) if node.input else None
            if (
                _is_view_reshape(node, constants)
                and before is not None
                and before.op_type in _VIEW_OPS
                and before.domain in ("", "ai.onnx")
                and (before.op_type != "Reshape" or _is_view_reshape(before, constants))
            ):
                node.input[0] = before.input[0]
                changed = True


def _without_noop_reshapes(
    nodes: list[onnx.NodeProto],
    constants: dict[str, np.ndarray],
    known: dict[str, list[int | None]],
    keep: set[str],
) -> list[onnx.NodeProto]:
    """Drop a Reshape to the shape its input already has (its readers read
    the input): the input's dims are those given, but for one unknown dim
    where the shape says -1."""
    rename: dict[str, str] = {}
    kept = []
    for node in nodes:
        node.input[:] = [rename.get(name, name) for name in node.input]
        if (
            _is_view_reshape(node, constants)
            and node.output[0] not in keep
            and _same_shape(known.get(node.input[0]), constants[node.input[1]])
        ):
            rename[node.output[0]] = node.input[0]
            continue
        kept.append(node)
    if rename:
        _rename_reads(kept, rename)
    return kept


def _same_shape(dims: list[int | None] | None, shape: np.ndarray) -> bool:
    if dims is None or len(dims) != len(shape) or dims.count(None) > 1:
        return False
    return all(
        (want == -1) if dim is None else (want == dim)
        for dim, want in zip(dims, shape, strict=True)
    )


def _rename_reads(nodes: list[onnx.NodeProto], rename: dict[str, str]) -> None:
    """Map the names that ``nodes`` read, inside subgraphs too."""
    for node in nodes:
        node.input[:] = [rename.get(name, name) for name in node.input]
        for attribute in node.attribute:
            for graph in subgraphs(attribute):
                _rename_reads(list(graph.node), rename)
                for value in graph.output:
                    value.name = rename.get(value.name, value.name)


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
    depth = _dims(x_type.shape.dim)[-1]
    if not isinstance(depth, int):
        depth = _dims(_value(step, spec.step_output).type.tensor_type.shape.dim)[-1]
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


def _dims(dims: Iterable[onnx.TensorShapeProto.Dimension]) -> list[int | str | None]:
    """Dims as ints where fixed, names where symbolic, None where unknown."""
    result: list[int | str | None] = []
    for dim in dims:
        if dim.HasField("dim_value"):
            result.append(dim.dim_value)
        elif dim.HasField("dim_param"):
            result.append(dim.dim_param)
        else:
            result.append(None)
    return result


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


def _axes_op(node: onnx.NodeProto | None, op_type: str, constants: dict[str, np.ndarray]) -> bool:
    """Whether ``node`` is ``op_type`` (Squeeze, Unsqueeze, Reshape) of the
    default domain with a constant second input."""
    return (
        node is not None
        and node.op_type == op_type
        and node.domain in ("", "ai.onnx")
        and len(node.input) == 2
        and node.input[1] in constants
    )


def _is_view_reshape(node: onnx.NodeProto | None, constants: dict[str, np.ndarray]) -> bool:
    """Whether ``node`` is a Reshape to a constant shape that depends on
    nothing but the element count: no 0 (copy an input dim), so the same
    elements give the same result whatever layout they come in."""
    return _axes_op(node, "Reshape", constants) and 0 not in constants[node.input[1]]
