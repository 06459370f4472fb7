"""The manifest's ``streaming`` section: a graph that carries a recurrent
model's state from one call to the next, and how it is run.

A stream bundle's graph takes, beside the model's sequence inputs cut into
*chunks* (``(batch, time, ...)``, any length from 1), every recurrent layer's
states, and returns, beside the chunk's outputs, every new state. The section
says which graph inputs and outputs are states (of which layer, of which kind,
how wide, what a reset writes), whether each output is per step or per chunk,
where the bundle comes from, the batch a stateful Keras model was built for,
and, in words, what a masked step does::

    "streaming": {
      "graph": "stream",
      "source": "stateful" | "streaming",
      "inputs": ["x"],
      "outputs": [{"name": "head", "per": "step" | "chunk"}],
      "states": [{"layer": "rnn", "kind": "h", "index": 0, "size": 7,
                  "input": "state.rnn.h", "output": "state.rnn.h.next",
                  "reset": "zeros"}],
      "keras_batch": 3 | null,
      "masked_steps": str | null
    }

The section's fields are the manifest's JSON Schema's (``streaming``,
``stream_output``, ``stream_state``); :func:`parse_streaming` reads it with
the manifest's own reader (:mod:`parity.runtime.bundle_format.manifest`),
which hands itself in: this module imports nothing of the manifest's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

# Graph inputs and outputs that carry a state: ``state.<layer>.<kind>`` in,
# ``state.<layer>.<kind>.next`` out. The prefix keeps them apart from the data
# inputs and outputs, which are named after Keras layers (a clash is refused
# at export).
STATE_PREFIX = "state."
NEXT_SUFFIX = ".next"
# The most states one layer may declare (LSTM has 2), as the schema says.
MAX_STATE_INDEX = 63

# Where a stream bundle comes from: a Keras model whose recurrent layers are
# all ``stateful=True``, or a stateless forward model exported on request
# (``--streaming``).
Source = Literal["stateful", "streaming"]
# A per-step output has the chunk's time axis (``return_sequences``); a
# per-chunk output is the value after the chunk's last step (a many-to-one
# model's answer so far).
Per = Literal["step", "chunk"]
# What a reset writes into a state: zeros, as Keras' ``reset_state()``.
Reset = Literal["zeros"]


def state_input(layer: str, kind: str) -> str:
    """The graph input that feeds ``layer``'s state ``kind`` in."""
    return f"{STATE_PREFIX}{layer}.{kind}"


def state_output(layer: str, kind: str) -> str:
    """The graph output that returns ``layer``'s new state ``kind``."""
    return f"{STATE_PREFIX}{layer}.{kind}{NEXT_SUFFIX}"


@dataclass(frozen=True)
class StreamState:
    """One carried state: ``layer``'s ``kind`` ("h"; "c" for an LSTM; "s0",
    "s1", ... for a cell with more), ``size`` wide, fed as graph input
    ``input`` and returned as graph output ``output``; ``index`` is its place
    in Keras' ``layer.states``; a reset writes ``reset``."""

    layer: str
    kind: str
    index: int
    size: int
    input: str
    output: str
    reset: Reset = "zeros"


@dataclass(frozen=True)
class StreamOutput:
    """A data output of the stream graph, per step or per chunk."""

    name: str
    per: Per


@dataclass(frozen=True)
class StreamSpec:
    """How the stream graph ``graph`` is run chunk after chunk.

    ``inputs`` are the sequence inputs, cut into chunks along axis 1 (every
    input of one chunk has the same length); ``outputs`` every data output;
    ``states`` every state, in the graph's input order. ``keras_batch`` is the
    batch a stateful Keras model was built for (the graph takes any; None for
    ``source`` "streaming"); ``masked_steps`` says what a masked step does
    (None without a mask)."""

    graph: str
    source: Source
    inputs: tuple[str, ...]
    outputs: tuple[StreamOutput, ...]
    states: tuple[StreamState, ...]
    keras_batch: int | None = None
    masked_steps: str | None = None


def parse_streaming(schema: Any, data: Any, graphs: Mapping[str, Any], max_dim: int) -> StreamSpec:
    """Validate a decoded ``streaming`` section against the manifest's graphs:
    every name must be an input or output of the stream graph of the right
    shape (a sequence input ``(batch, time, ...)``, a per-step output
    ``(batch, time, ...)``, a state ``(batch, size)`` float32), and the
    sequence inputs and states must be all of the graph's inputs, the data
    and state outputs all of its outputs.

    Args:
        schema: the manifest's reader (``manifest._Schema``), whose checks
            take each object's fields from the JSON Schema and name the first
            wrong field.
        data: the decoded section.
        graphs: the manifest's graphs, already validated, by key.
        max_dim: the largest size the manifest allows (a state, ``keras_batch``).

    Raises:
        BundleError: naming the first field that is wrong.
    """
    where = "streaming"
    data = schema.fields(data, where, "streaming")
    key = schema.text(data["graph"], f"{where}.graph")
    if key not in graphs:
        raise schema.fail(f"{where}.graph", f"{key!r} names no graph")
    graph = graphs[key]
    inputs = data["inputs"]
    if not isinstance(inputs, list) or not inputs:
        raise schema.fail(f"{where}.inputs", "expected a non-empty list of input names")
    for index, name in enumerate(inputs):
        at = f"{where}.inputs[{index}]"
        spec = _tensor(schema, name, graph.inputs, at)
        if len(spec.shape) < 2 or spec.shape[0] != "batch" or not isinstance(spec.shape[1], str):
            raise schema.fail(at, f"{name!r} is not a sequence (batch, time, ...)")
    items = _items(schema, data["outputs"], f"{where}.outputs")
    outputs = [
        _output(schema, item, graph, f"{where}.outputs[{i}]") for i, item in enumerate(items)
    ]
    items = _items(schema, data["states"], f"{where}.states")
    states = [_state(schema, item, graph, f"{where}.states[{i}]", max_dim)
              for i, item in enumerate(items)]  # fmt: skip
    names_in = [*inputs, *(state.input for state in states)]
    if sorted(names_in) != sorted(spec.name for spec in graph.inputs):
        raise schema.fail(where, "the sequence and state inputs must be the graph's inputs, once")
    names_out = [*(output.name for output in outputs), *(state.output for state in states)]
    if sorted(names_out) != sorted(spec.name for spec in graph.outputs):
        raise schema.fail(where, "the data and state outputs must be the graph's outputs, once")
    source = schema.choice(data["source"], f"{where}.source", get_args(Source))
    batch = data.get("keras_batch")
    if batch is not None:
        batch = schema.integer(batch, f"{where}.keras_batch", 1, max_dim)
    masked = data.get("masked_steps")
    if masked is not None:
        masked = schema.text(masked, f"{where}.masked_steps")
    return StreamSpec(
        graph=key,
        source=source,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        states=tuple(states),
        keras_batch=batch,
        masked_steps=masked,
    )


def _items(schema: Any, value: Any, where: str) -> list:
    if not isinstance(value, list) or not value:
        raise schema.fail(where, "expected a non-empty list")
    return value


def _tensor(schema: Any, name: Any, specs: Any, where: str) -> Any:
    """The graph tensor ``name`` names."""
    schema.member(name, specs, where)
    return next(spec for spec in specs if spec.name == name)


def _output(schema: Any, data: Any, graph: Any, where: str) -> StreamOutput:
    data = schema.fields(data, where, "stream_output")
    spec = _tensor(schema, data["name"], graph.outputs, f"{where}.name")
    per = schema.choice(data["per"], f"{where}.per", get_args(Per))
    if per == "step" and (len(spec.shape) < 2 or not isinstance(spec.shape[1], str)):
        raise schema.fail(f"{where}.per", "a per-step output is (batch, time, ...)")
    return StreamOutput(spec.name, per)


def _state(schema: Any, data: Any, graph: Any, where: str, max_dim: int) -> StreamState:
    data = schema.fields(data, where, "stream_state")
    widths = []
    for side, specs in (("input", graph.inputs), ("output", graph.outputs)):
        spec = _tensor(schema, data[side], specs, f"{where}.{side}")
        shape = tuple(spec.shape)
        if spec.dtype != "float32" or len(shape) != 2 or shape[0] != "batch":
            raise schema.fail(f"{where}.{side}", "expected float32 of shape (batch, size)")
        widths.append(shape[1])
    size = schema.integer(data["size"], f"{where}.size", 1, max_dim)
    if widths != [size, size]:
        raise schema.fail(f"{where}.size", f"{size}, but the state's tensors are {widths}")
    return StreamState(
        layer=schema.text(data["layer"], f"{where}.layer", name=True),
        kind=schema.text(data["kind"], f"{where}.kind", name=True),
        index=schema.integer(data["index"], f"{where}.index", 0, MAX_STATE_INDEX),
        size=size,
        input=data["input"],
        output=data["output"],
        reset=schema.choice(data["reset"], f"{where}.reset", get_args(Reset)),
    )
