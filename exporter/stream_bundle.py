"""Exporting a stateful (or, on request, a stateless forward) recurrent Keras
model as a stream bundle.

The bundle is a single-graph bundle whose graph, ``stream``, takes a chunk of
the sequence and every recurrent state and returns the chunk's outputs and
every new state (the manifest's ``streaming`` section says which is which,
:mod:`parity.runtime.bundle_format.streaming`). Its golden data holds, as for
any graph, two draws of the graph (from random states), and one whole stream
computed by the stateless twin chunk by chunk, with a reset of one row on the
way (draw ``stream_chunks``), which ``parity verify BUNDLE`` replays with
ONNX Runtime alone.

The graph is tf2onnx's conversion of the stateless twin
(:mod:`parity.exporter.stream_twin`: plain LSTMs become ``LSTM`` ops started
from the state inputs, GRU, SimpleRNN and every masked layer ``Loop``s), or,
where the model allows and ``fuse`` asks, the twin with every recurrent
layer written as ONNX's fused op (:mod:`parity.exporter.stream_fused`). A
fused graph that strays from Keras on its golden inputs is dropped for
tf2onnx's, and a graph of either kind that strays fails the export.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from parity.exporter.bundle_writer import placeholder_graph, write_bundle
from parity.exporter.convert import ConvertedGraph, keras_to_onnx, simplified_graph
from parity.exporter.fused import FusedGraph, NotFused
from parity.exporter.golden_data import golden_data, golden_mismatch
from parity.exporter.keras_stream import TwinStream
from parity.exporter.signature import find_mask
from parity.exporter.stream_fused import fuse_stream
from parity.exporter.stream_plan import StreamPlan, plan_stream
from parity.exporter.stream_twin import StreamModel, stateless_twin
from parity.runtime.bundle_format.golden import STREAM_CHUNKS, input_key, output_key
from parity.runtime.bundle_format.manifest import FORMAT_VERSION, GraphSpec, Manifest, MaskSpec
from parity.runtime.bundle_format.streaming import StreamSpec
from parity.runtime.errors import ParityError
from parity.runtime.progress import Progress, silent
from parity.runtime.sampling import sample_stream
from parity.runtime.stream import run_schedule
from parity.runtime.versions import tool_versions

GRAPH_KEY = "stream"
GRAPH_FILE = "stream.onnx"
# The golden stream (keys: parity.runtime.bundle_format.golden): 3 rows fed
# in chunks of 5, 1 and 6 steps, row 1 reset before the third chunk.
GOLDEN_BATCH = 3
GOLDEN_CHUNKS = (5, 1, 6)
GOLDEN_RESETS = {2: (1,)}


def export_stream(
    model: Any,
    out_dir: Path,
    *,
    source: Mapping[str, str],
    streaming: bool = False,
    opset: int,
    fuse: bool = True,
    seed: int = 0,
    progress: Progress = silent,
) -> Manifest:
    """Export ``model`` as a stream bundle at ``out_dir``.

    Args:
        model: a functional Keras model whose recurrent layers are all
            stateful, or a stateless one with ``streaming``.
        out_dir: the bundle folder (see :func:`parity.exporter.export_keras`).
        source: what the manifest records of the model's file.
        streaming: export a stateless forward model as a stream.
        opset: the ONNX opset.
        fuse: write the recurrent layers as ONNX's fused ops where the model allows.
        seed: the seed of the golden inputs.
        progress: hears one line as each stage starts.

    Returns:
        The manifest as written.

    Raises:
        NotStreamable: the model cannot stream (the message says why).
        ParityError: the conversion failed, or its graph strays from Keras.
    """
    progress("streaming: every recurrent state an input and an output")
    plan = plan_stream(model, streaming=streaming)
    twin = stateless_twin(model, plan)
    mask = find_mask(twin.model)
    fused = NotFused("fusion is off (fuse=False, --no-fuse)")
    if fuse:
        progress("fusing recurrent layers into ONNX's recurrent ops, from their states")
        fused = fuse_stream(model, plan, mask, opset=opset)
    converted, graph, golden, notes = _written(twin, fused, mask, opset, seed, progress)
    wrong = golden_mismatch(converted.proto, GRAPH_KEY, graph, golden)
    if wrong is not None and isinstance(fused, FusedGraph):  # keep tf2onnx's graph
        fused = NotFused(f"the fused graph strayed from Keras on the golden inputs: {wrong}")
        converted, graph, golden, notes = _written(twin, fused, mask, opset, seed, progress)
        wrong = golden_mismatch(converted.proto, GRAPH_KEY, graph, golden)
    if wrong is not None:
        raise ParityError(f"model {model.name!r}: the stream graph strays from Keras: {wrong}")
    progress("golden data: the stateless twin fed a stream in chunks")
    golden.update(chunked_golden(twin, graph, mask, seed))
    spec = StreamSpec(
        graph=GRAPH_KEY,
        source=plan.source,
        inputs=twin.inputs,
        outputs=twin.outputs,
        states=twin.states,
        keras_batch=plan.keras_batch,
        masked_steps=plan.masked_steps,
    )
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        name=source.get("name") or model.name,
        kind="single",
        source=dict(source),
        opset=opset,
        versions=tool_versions(),
        graphs={GRAPH_KEY: graph},
        mask=mask,
        notes=(*_stream_notes(plan, fused), *notes),
        streaming=spec,
    )
    graph_bytes = {GRAPH_KEY: converted.proto.SerializeToString()}
    progress(f"writing {out_dir}")
    return write_bundle(Path(out_dir), manifest, graph_bytes, golden)


def _written(
    twin: StreamModel,
    fused: FusedGraph | NotFused,
    mask: MaskSpec | None,
    opset: int,
    seed: int,
    progress: Progress,
) -> tuple[ConvertedGraph, GraphSpec, dict[str, np.ndarray], list[str]]:
    """The graph as it is written (simplified, its names checked), its spec,
    its golden draws and the notes on it."""
    if isinstance(fused, FusedGraph):
        converted = fused.converted
    else:
        progress("converting the stateless twin with tf2onnx")
        converted = keras_to_onnx(twin.model, opset=opset)
    progress("simplifying with onnx-simplifier")
    converted, unsimplified = simplified_graph(converted)
    _check_signature(twin, converted)
    graph = placeholder_graph(GRAPH_FILE, converted.inputs, converted.outputs)
    progress("golden data: TensorFlow's outputs on drawn inputs")
    golden = golden_data(twin.model, GRAPH_KEY, graph, mask, seed=seed)
    return converted, graph, golden, [unsimplified] if unsimplified else []


def _stream_notes(plan: StreamPlan, fused: FusedGraph | NotFused) -> list[str]:
    where = (
        f"a stateful model built for batch {plan.keras_batch}"
        if plan.source == "stateful"
        else "a stateless model exported with --streaming"
    )
    notes = [
        f"a stream bundle ({where}): the graph takes a chunk of any length and every "
        "recurrent state, and returns the chunk's outputs and the new states (manifest "
        "section 'streaming'); the batch is dynamic"
    ]
    if isinstance(fused, FusedGraph):
        notes += fused.notes()
    else:
        notes.append(
            "the recurrent layers are tf2onnx's graph of the stateless twin (plain LSTMs as "
            f"LSTM ops, others as Loops): not fused because {fused.reason}"
        )
    return [*notes, *plan.notes]


def _check_signature(twin: StreamModel, converted: ConvertedGraph) -> None:
    """The graph takes the sequence inputs then the states, returns the data
    outputs then the new states, with a dynamic batch and time axis."""
    expected_in = [*twin.inputs, *(s.input for s in twin.states)]
    expected_out = [*(o.name for o in twin.outputs), *(s.output for s in twin.states)]
    found_in = [spec.name for spec in converted.inputs]
    found_out = [spec.name for spec in converted.outputs]
    if (found_in, found_out) != (expected_in, expected_out):
        raise ParityError(
            f"the stream graph is {found_in} -> {found_out}; expected {expected_in} -> "
            f"{expected_out}"
        )
    for spec in converted.inputs[: len(twin.inputs)]:
        if spec.shape[0] != "batch" or not isinstance(spec.shape[1], str):
            raise ParityError(f"stream input {spec.name!r} is {spec.shape}, not (batch, time, ...)")


def chunked_golden(
    twin: StreamModel, graph: GraphSpec, mask: MaskSpec | None, seed: int
) -> dict[str, np.ndarray]:
    """One stream computed by the stateless twin chunk by chunk (the schedule
    above; the keys of :mod:`parity.runtime.bundle_format.golden`).

    Args:
        twin: the stateless twin.
        graph: the stream graph's spec (its inputs' domains).
        mask: the model's mask, if any: masked steps fall anywhere.
        seed: the seed of the drawn sequences.
    """
    specs = [graph.input(name) for name in twin.inputs]
    inputs = sample_stream(specs, GOLDEN_BATCH, sum(GOLDEN_CHUNKS), mask, seed=seed + 7)
    resets = np.zeros((len(GOLDEN_CHUNKS), GOLDEN_BATCH), bool)
    for index, rows in GOLDEN_RESETS.items():
        resets[index, list(rows)] = True
    outputs, states = run_schedule(TwinStream(twin, GOLDEN_BATCH), inputs, GOLDEN_CHUNKS, resets)
    golden = {input_key(STREAM_CHUNKS, name): value for name, value in inputs.items()}
    golden[f"{STREAM_CHUNKS}/lengths"] = np.array(GOLDEN_CHUNKS, np.int64)
    golden[f"{STREAM_CHUNKS}/resets"] = resets
    golden.update({output_key(STREAM_CHUNKS, name): value for name, value in outputs.items()})
    golden.update({f"{STREAM_CHUNKS}/states/{name}": value for name, value in states.items()})
    return golden
