"""``verify.localise``: the first layer whose output leaves its noise rule.

A failing check says which output of the graph is wrong; this says where the
graph goes wrong. The Keras model is run with every layer's output exposed
(:func:`parity.exporter.keras_graph.exposing`, in float32 and rebuilt in
float64 by :func:`parity.verify.noise.float64_model`), and the bundle's graph
with the tensors that carry those outputs (:mod:`verify.layer_tensors`)
marked as extra outputs, on the same inputs. Each layer output is held to
its own noise rule, as verification holds a graph output
(:func:`parity.verify.compare.compare_arrays`: ONNX Runtime's error against
float64 at most ``noise_factor`` times TensorFlow's float32 error). The first
layer output, in the model's order, that leaves its rule names the first
divergent layer; the rows before it say which layers still agree.

A seq2seq bundle is localised graph by graph, in this order: the encoder;
the step graph on a random draw of its inputs (random states: a recurrent
kernel whose state starts at zero in a generation only shows there); the
step graph run once per step as ``runtime.generate``'s step loop runs it,
from TensorFlow's encoder states; and the loop graph, its encoder part and
then its ``Loop`` body at every step (the body's tensors stacked as scan
outputs). Generations are held to TensorFlow's step model run step by step,
in float32 and float64, each fed its own outputs; a layer's floor at step t
is its largest noise over steps 0 to t, as for a generation's outputs.

As with :mod:`verify.stored`, TensorFlow's side (:func:`layer_reference`) is
computed once and replayed against ONNX Runtime (:func:`replay_layers`) as
often as needed, so that a damaged copy of a bundle is localised without
TensorFlow. Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from parity.runtime.bundle import Bundle, load_bundle
from parity.runtime.errors import quoted
from parity.runtime.generate import LOOP_START, LOOP_STEPS, start_input
from parity.runtime.providers import open_session
from parity.runtime.sampling import sample_inputs
from parity.verify.compare import compare_arrays, noise_of
from parity.verify.layer_tensors import (
    GraphIndex,
    Located,
    Recurrent,
    Wanted,
    exposed,
    exposed_loop,
    in_keras_layout,
    locate,
)
from parity.verify.localisation import LayerRow, Localisation
from parity.verify.options import VerifyOptions
from parity.verify.runners import TensorFlowDevice, on_device
from parity.verify.stored import Float64Twin
from parity.verify.tolerance import TolerancePolicy

# The draw localised: a batch and a length that differ, so that a
# time-major value is told from a batch-major one by its shape.
BATCH = 3
TIME = 7


# --- TensorFlow's side ---------------------------------------------------------------


@dataclass(frozen=True)
class LayerValues:
    """TensorFlow's value of every layer output of one call, in float32 and
    (None where the model cannot run so) float64, in :class:`Wanted` order."""

    expected: tuple[np.ndarray, ...]
    exact: tuple[np.ndarray, ...] | None


@dataclass(frozen=True)
class GraphReference:
    """TensorFlow's layer outputs for one graph's Keras model: for one call on
    ``feeds``, or for every step of a generation started with ``feeds``."""

    layers: tuple[Wanted, ...]
    feeds: dict[str, np.ndarray]
    values: tuple[LayerValues, ...]  # one call, or one per generation step


@dataclass(frozen=True)
class LayerReference:
    """TensorFlow's side of a localisation: ``model``; or, for seq2seq,
    ``encoder``, ``step`` (a random draw) and ``generation`` (the step model
    over the horizon from the encoder's states)."""

    graphs: dict[str, GraphReference]
    float64: str = ""  # why float64 did not run; "" when it did


class _Probe:
    """A Keras model with every layer output exposed, in float32 and float64,
    and what the ONNX side needs to know of each output."""

    def __init__(self, model: Any) -> None:
        from parity.exporter.convert import traced_output_names
        from parity.exporter.keras_graph import exposing, layer_outputs, model_outputs
        from parity.exporter.keras_io import keras_output_names
        from parity.verify.noise import float64_model

        outputs = layer_outputs(model)
        self.probe = exposing(model, [o.tensor for o in outputs])
        names = traced_output_names(self.probe)
        ends = model_outputs(model)
        self.layers = tuple(
            Wanted(
                layer=o.layer.name,
                kind=_kind(o.layer),
                index=o.index,
                tf_name=name,
                position=next((i for i, end in enumerate(ends) if end is o.tensor), None),
                has_weights=bool(o.layer.weights),
                recurrent=_recurrent(o.layer),
            )
            for o, name in zip(outputs, names, strict=False)
        )
        self.output_names = keras_output_names(model)
        self.exact, reason = float64_model(self.probe)
        self.twin = Float64Twin(reason)  # off, with the reason, once float64 fails to run

    def run(
        self, feeds: Mapping[str, np.ndarray], exact: bool = False
    ) -> tuple[tuple[np.ndarray, ...], dict[str, np.ndarray]]:
        """The layer outputs and the model's own outputs (by name), called
        eagerly in float32 or, with ``exact``, in float64."""
        from parity.exporter.keras_graph import input_names, model_inputs

        model = self.exact if exact else self.probe
        arrays = [
            np.asarray(feeds[name]).astype(str(tensor.dtype), copy=False)
            for name, tensor in zip(input_names(model), model_inputs(model), strict=True)
        ]
        with warnings.catch_warnings():  # a one-input model called on its array
            warnings.simplefilter("ignore", UserWarning)
            values = model(arrays[0] if len(arrays) == 1 else arrays, training=False)
        values = [np.asarray(v) for v in (values if isinstance(values, list | tuple) else [values])]
        count = len(self.layers)
        return tuple(values[:count]), dict(zip(self.output_names, values[count:], strict=True))

    def values(self, feeds: Mapping[str, np.ndarray]) -> LayerValues:
        """Both runs of one call."""
        exact = self.twin.run(lambda: self.run(feeds, exact=True)[0])
        return LayerValues(self.run(feeds)[0], exact)


def _kind(layer: Any) -> str:
    inner = getattr(layer, "layer", None)  # a wrapper: TimeDistributed, Bidirectional
    name = type(layer).__name__
    return f"{name}({type(inner).__name__})" if inner is not None else name


def _recurrent(layer: Any) -> Recurrent | None:
    import keras

    from parity.exporter.keras_graph import is_recurrent

    if isinstance(layer, keras.layers.Bidirectional):
        parts, merge = (layer.forward_layer, layer.backward_layer), layer.merge_mode
    elif is_recurrent(layer):
        parts, merge = (layer,), None
    else:
        return None
    kernels = [getattr(part.cell, "kernel", None) for part in parts]
    return Recurrent(
        kernels=tuple(np.asarray(k) for k in kernels if k is not None),
        sequences=bool(parts[0].return_sequences),
        lstm=type(parts[0].cell).__name__ == "LSTMCell",
        merge_mode=merge,
    )


def layer_reference(
    bundle: Bundle,
    keras_model: Any,
    options: VerifyOptions | None = None,
    *,
    inputs: Mapping[str, np.ndarray] | None = None,
    device: TensorFlowDevice | None = None,
) -> LayerReference:
    """TensorFlow's side of a localisation: every layer output of the Keras
    model (for seq2seq: of the split's encoder and step models) on one draw.

    Args:
        bundle: the loaded bundle (its manifest says what to draw).
        keras_model: the functional Keras model the bundle was exported from.
        options: the seed of the draw and a generation's horizon.
        inputs: the caller's checked arrays (:func:`parity.verify.check.checked_user_inputs`)
            in place of the draw.
        device: where TensorFlow runs; the CPU when None.
    """
    options = options or VerifyOptions()
    manifest = bundle.manifest
    with on_device(device or TensorFlowDevice("/CPU:0", False)):
        if manifest.kind == "seq2seq":
            return _seq2seq_reference(bundle, keras_model, options, inputs)
        probe = _Probe(keras_model)
        feeds = dict(inputs) if inputs is not None else _draw(manifest, "model", options.seed)
        graph = GraphReference(probe.layers, feeds, (probe.values(feeds),))
        return LayerReference({"model": graph}, probe.twin.reason)


def _draw(manifest: Any, key: str, seed: int) -> dict[str, np.ndarray]:
    graph = manifest.graph(key)
    mask = manifest.mask if key == "model" else None
    time_axis = any(spec.shape[1:2] == ("time",) for spec in graph.inputs)
    sample = sample_inputs(graph.inputs, BATCH, time=TIME if time_axis else None, seed=seed,
                           mask=mask)  # fmt: skip
    return dict(sample.inputs)


def _seq2seq_reference(
    bundle: Bundle, model: Any, options: VerifyOptions, inputs: Mapping[str, np.ndarray] | None
) -> LayerReference:
    from parity.exporter.split import split_seq2seq

    manifest = bundle.manifest
    spec = manifest.seq2seq
    split = split_seq2seq(model, start_token=spec.start_token or 0)
    encoder, step = _Probe(split.encoder), _Probe(split.step)
    if inputs is None:
        encoder_feeds = _draw(manifest, "encoder", options.seed)
        start = start_input(manifest, encoder_feeds)
        step_feeds = _draw(manifest, "step", options.seed)
    else:
        encoder_feeds = {s.name: inputs[s.name] for s in manifest.graph("encoder").inputs}
        start = (
            np.ascontiguousarray(np.asarray(inputs[spec.step_input])[:, :1])
            if spec.step_input in inputs
            else start_input(manifest, encoder_feeds)
        )
        step_feeds = None  # the first generation step's
    steps = options.steps or spec.steps
    first = _step_feeds(spec, start, encoder.run(encoder_feeds)[1])
    expected = _generation(step, spec, first, steps)

    def exact_generation() -> list[tuple[np.ndarray, ...]] | None:
        encoded = encoder.twin.run(lambda: encoder.run(encoder_feeds, exact=True)[1])
        first64 = None if encoded is None else _step_feeds(spec, start, encoded)
        return None if first64 is None else _generation(step, spec, first64, steps, exact=True)

    exact = step.twin.run(exact_generation)
    generation = tuple(
        LayerValues(expected[t], None if exact is None else exact[t]) for t in range(steps)
    )
    step_feeds = step_feeds or first
    graphs = {
        "encoder": GraphReference(encoder.layers, encoder_feeds, (encoder.values(encoder_feeds),)),
        "step": GraphReference(step.layers, step_feeds, (step.values(step_feeds),)),
        "generation": GraphReference(step.layers, first, generation),
    }
    return LayerReference(graphs, encoder.twin.reason or step.twin.reason)


def _step_feeds(spec: Any, start: np.ndarray, encoded: Mapping[str, np.ndarray]) -> dict:
    """The step graph's first inputs: the start, and the states and memories
    the encoder gave (states that start from zeros, zeros)."""
    feeds = {spec.step_input: start}
    for state in spec.states:
        feeds[state.step_input] = (
            np.asarray(encoded[state.encoder_output])
            if state.init == "encoder"
            else np.zeros((start.shape[0], state.size), np.float32)
        )
    for memory in spec.memories:
        feeds[memory.step_input] = np.asarray(encoded[memory.encoder_output])
    return feeds


def _generation(
    step: _Probe, spec: Any, feeds: dict[str, np.ndarray], steps: int, exact: bool = False
) -> list[tuple[np.ndarray, ...]]:
    """Every layer output at every step of a generation by the step model,
    each step fed its own output and states (in float64 too, with ``exact``)."""
    feeds = dict(feeds)
    start = np.asarray(feeds[spec.step_input])
    if exact and start.dtype.kind == "f":
        feeds[spec.step_input] = start.astype(np.float64)
    per_step = []
    for _ in range(steps):
        layers, outputs = step.run(feeds, exact=exact)
        per_step.append(layers)
        feeds = _next_feeds(spec, feeds, outputs)
    return per_step


def _next_feeds(spec: Any, feeds: Mapping[str, np.ndarray], outputs: Mapping) -> dict:
    """The next step's inputs: the output fed back by the manifest's rule, the new states."""
    like = np.asarray(feeds[spec.step_input])
    output = np.asarray(outputs[spec.step_output])
    if spec.feedback == "identity":
        x = output.astype(like.dtype)
    elif spec.feedback == "argmax_onehot":
        x = np.eye(output.shape[-1], dtype=like.dtype)[np.argmax(output, axis=-1)]
    else:
        x = np.argmax(output, axis=-1).astype(like.dtype)
    states = {state.step_input: np.asarray(outputs[state.step_output]) for state in spec.states}
    return {**feeds, spec.step_input: x, **states}


# --- ONNX Runtime's side ---------------------------------------------------------------


def replay_layers(
    bundle: Bundle,
    reference: LayerReference,
    policy: TolerancePolicy | None = None,
    *,
    tf32: bool = False,
) -> Localisation:
    """ONNX Runtime's layer outputs on ``bundle`` held to TensorFlow's
    ``reference``, graph by graph; ``seconds`` is left 0.

    Args:
        bundle: the loaded bundle (a damaged copy too: only its files are read).
        reference: TensorFlow's side, from :func:`layer_reference`.
        policy: the noise factor, and the allclose tolerance where float64 did
            not run or the caller fixed the tolerances.
        tf32: allow TF32 matmuls where the bundle runs on a GPU.
    """
    judge = _Judge(policy or TolerancePolicy(), reference.float64)
    notes = [f"layers held to the allclose rule: {reference.float64}"] if reference.float64 else []
    graphs = reference.graphs
    if "model" in graphs:
        rows = _graph_rows(bundle, "model", graphs["model"], judge, notes, tf32)
    else:
        rows = _graph_rows(bundle, "encoder", graphs["encoder"], judge, notes, tf32)
        rows += _graph_rows(bundle, "step", graphs["step"], judge, notes, tf32)
        rows += _graph_rows(bundle, "step", graphs["generation"], judge, notes, tf32, True)
        if bundle.manifest.seq2seq.loop_graph is not None:
            rows += _loop_rows(bundle, graphs["encoder"], graphs["generation"], judge, notes, tf32)
    return Localisation(tuple(rows), notes=tuple(notes))


def localise(
    bundle: str | Path | Bundle,
    keras_model: Any,
    options: VerifyOptions | None = None,
    *,
    inputs: Mapping[str, np.ndarray] | None = None,
    device: TensorFlowDevice | None = None,
) -> Localisation:
    """The first layer whose output leaves its noise rule, with every layer
    output's row. Never raises for a model or bundle it cannot localise: the
    :class:`Localisation`'s ``reason`` says why (a SavedModel, whose graph has
    no Keras layers; a stream bundle; a layer TensorFlow cannot run so).

    Args:
        bundle: the bundle, loaded or its folder (loaded on ``options.device``).
        keras_model: the functional Keras model the bundle was exported from.
        options: the draw's seed, a generation's horizon, the tolerances.
        inputs: the caller's checked arrays in place of the draw.
        device: where TensorFlow runs; the CPU when None.
    """
    from parity.exporter.saved_model import is_wrapped_saved_model

    if is_wrapped_saved_model(keras_model):
        return Localisation(reason="a SavedModel's graph is one traced signature: no Keras layers")
    options = options or VerifyOptions()
    started = time.perf_counter()
    try:
        if not isinstance(bundle, Bundle):
            bundle = load_bundle(bundle, device=options.device, tf32=options.tf32)
        if bundle.manifest.streaming is not None:
            return Localisation(
                reason="a stream bundle is checked chunk by chunk: no layer is localised"
            )
        reference = layer_reference(bundle, keras_model, options, inputs=inputs, device=device)
        found = replay_layers(bundle, reference, options.policy, tf32=options.tf32)
    except Exception as exc:  # Keras, TensorFlow and onnx raise many types
        found = Localisation(reason=quoted(exc, 300))
    return dataclasses.replace(found, seconds=time.perf_counter() - started)


class _Judge:
    """Holds one layer output's ONNX value to TensorFlow's under the policy's rule."""

    def __init__(self, policy: TolerancePolicy, float64: str) -> None:
        self.policy = policy
        self.noise = not policy.fixed and not float64

    def row(
        self,
        where: tuple[str, int | None],
        wanted: Wanted,
        located: Located,
        index: GraphIndex,
        values: Mapping[str, np.ndarray],
        reference: tuple[np.ndarray, np.ndarray | None],
        floor_before: float = 0.0,
    ) -> tuple[LayerRow, float]:
        """The row of one layer output, and the noise floor it was held to
        (a generation's floor at the next step is at least this).

        The first of ``located``'s candidates whose value fits the Keras
        output's shape is judged; none fitting, the layer has no tensor."""
        expected, exact = reference
        expected = np.asarray(expected)
        base = dict(graph=where[0], step=where[1], layer=wanted.layer, kind=wanted.kind,
                    output=wanted.index, onnx_tensor=None, mapped_by=located.mapped_by,
                    layout="-", error=None, noise_floor=None, ratio=None, limit=None,
                    status="no tensor", note=located.note)  # fmt: skip
        tried = []
        for name in located.candidates:
            value = values.get(name)
            fits = None if value is None else in_keras_layout(
                np.asarray(value), located, expected.shape, index.channels_first(name))  # fmt: skip
            if fits is None:
                tried.append(f"{name} {None if value is None else np.shape(value)}")
                continue
            layout, view = fits
            exact = exact if self.noise and expected.dtype.kind == "f" else None
            floor = floor_before if exact is None else max(noise_of(expected, exact, view)[0],
                                                           floor_before)  # fmt: skip
            check = compare_arrays(
                f"{wanted.layer}:{wanted.index}",
                "layer",
                expected,
                view.astype(expected.dtype, copy=False),
                self.policy.default,
                exact=exact,
                factor=self.policy.noise_factor,
                noise_floor=None if exact is None else floor,
            )
            status = "agrees" if check.passed else "diverges"
            return LayerRow(**{**base, "onnx_tensor": name, "layout": layout, "error": check.error,
                               "noise_floor": check.noise_floor, "ratio": check.ratio,
                               "limit": check.limit, "status": status}), floor  # fmt: skip
        if tried:
            base["note"] = f"no candidate fits Keras' shape {expected.shape}: {'; '.join(tried)}"
        return LayerRow(**base), floor_before


def _folded(rows: list[LayerRow]) -> list[LayerRow]:
    """Each row without a tensor names the next layer (same graph and step) that has one."""
    done = list(rows)
    for i, row in enumerate(done):
        if row.status != "no tensor":
            continue
        later = next(
            (r.layer for r in done[i + 1 :] if r.onnx_tensor and r.layer != row.layer), None
        )
        done[i] = dataclasses.replace(
            row,
            status=f"no tensor (folded into {later})"
            if later
            else "no tensor (none after it has one)",
        )
    return done


def _graph_file(bundle: Bundle, key: str) -> tuple[onnx.ModelProto, Path]:
    file = Path(bundle.path) / bundle.manifest.graph(key).file
    return onnx.load(str(file)), file


class _Session:
    """A graph with some tensors exposed, opened as the bundle's sessions are."""

    def __init__(self, bundle: Bundle, proto: onnx.ModelProto, file: Path, tf32: bool) -> None:
        self.session = open_session(proto.SerializeToString(), file, bundle.device, tf32)
        self.inputs = {value.name for value in self.session.get_inputs()}
        self.outputs = [value.name for value in self.session.get_outputs()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        given = {name: value for name, value in feeds.items() if name in self.inputs}
        return dict(zip(self.outputs, self.session.run(self.outputs, given), strict=True))


def _exposure_changes(
    bundle: Bundle, key: str, feeds: Mapping[str, np.ndarray], values: Mapping[str, np.ndarray]
) -> list[str]:
    """A note where exposing tensors changed the graph's own outputs: ONNX
    Runtime does not fuse across a graph output, so a fault that lives in a
    fused kernel could vanish from the exposed graph."""
    notes = []
    for name, value in bundle.run(feeds, graph=key).items():
        if not np.array_equal(value, values.get(name), equal_nan=True):
            notes.append(
                f"{key} graph: output {name!r} changes once its layers' tensors are exposed "
                "(ONNX Runtime fuses otherwise): the rows are the exposed graph's"
            )
    return notes


def _trace_note(key: str, index: GraphIndex, layers: Sequence[Wanted]) -> list[str]:
    if index.in_trace(layers):
        return []
    return [
        f"{key} graph: no node is in the model's TensorFlow scope (traced otherwise than parity "
        "traces it): layers are found by graph outputs and recurrent ops only"
    ]


def _graph_rows(
    bundle: Bundle,
    key: str,
    reference: GraphReference,
    judge: _Judge,
    notes: list[str],
    tf32: bool,
    generation: bool = False,
) -> list[LayerRow]:
    """The rows of one graph run on the reference's inputs; with
    ``generation``, the step graph run once per step from Python, each step
    fed its own output and states (``runtime.generate``'s step loop)."""
    proto, file = _graph_file(bundle, key)
    index = GraphIndex(proto.graph)
    outputs = [spec.name for spec in bundle.manifest.graph(key).outputs]
    located = locate(index, reference.layers, outputs)
    session = _Session(bundle, exposed(proto, [n for f in located for n in f.candidates]), file,
                       tf32)  # fmt: skip
    feeds, rows, floors = dict(reference.feeds), [], {}
    for step, tensorflow in enumerate(reference.values):
        values = session.run(feeds)
        where = (key, step if generation else None)
        rows += _step_rows(where, reference.layers, located, index, values, tensorflow, judge,
                           floors)  # fmt: skip
        if generation:
            feeds = _next_feeds(bundle.manifest.seq2seq, feeds, values)
        else:
            notes += _trace_note(key, index, reference.layers)
            notes += _exposure_changes(bundle, key, feeds, values)
    return rows


def _step_rows(
    where: tuple[str, int | None],
    layers: Sequence[Wanted],
    located: Sequence[Located],
    index: GraphIndex,
    values: Mapping[str, np.ndarray],
    tensorflow: LayerValues,
    judge: _Judge,
    floors: dict[int, float],
) -> list[LayerRow]:
    """The rows of one call (one step), raising each layer's floor in ``floors``."""
    rows = []
    for i, (wanted, found) in enumerate(zip(layers, located, strict=True)):
        exact = None if tensorflow.exact is None else tensorflow.exact[i]
        row, floors[i] = judge.row(where, wanted, found, index, values,
                                   (tensorflow.expected[i], exact), floors.get(i, 0.0))  # fmt: skip
        rows.append(row)
    return _folded(rows)


def _loop_rows(
    bundle: Bundle,
    encoder: GraphReference,
    generation: GraphReference,
    judge: _Judge,
    notes: list[str],
    tf32: bool,
) -> list[LayerRow]:
    """The loop graph: its encoder part, then its body's layer outputs at every step."""
    from parity.exporter.loop import ENCODER_PREFIX, STEP_PREFIX

    manifest = bundle.manifest
    proto, file = _graph_file(bundle, "loop")
    loop = next(node for node in proto.graph.node if node.op_type == "Loop")
    body = next(a.g for a in loop.attribute if a.name == "body")
    outer = GraphIndex(proto.graph, ENCODER_PREFIX)
    inner = GraphIndex(body, STEP_PREFIX, {t.name: t for t in proto.graph.initializer})
    located_outer = locate(
        outer, encoder.layers, [ENCODER_PREFIX + s.name for s in manifest.graph("encoder").outputs]
    )
    located_inner = locate(
        inner, generation.layers, [STEP_PREFIX + s.name for s in manifest.graph("step").outputs]
    )
    copy, stacked = exposed_loop(
        proto,
        [n for f in located_outer for n in f.candidates],
        [n for f in located_inner for n in f.candidates],
    )
    start = generation.feeds[manifest.seq2seq.step_input]
    feeds = {**encoder.feeds, LOOP_START: start,
             LOOP_STEPS: np.array(len(generation.values), np.int64)}  # fmt: skip
    values = _Session(bundle, copy, file, tf32).run(feeds)
    notes += _exposure_changes(bundle, "loop", feeds, values)
    (tensorflow,) = encoder.values
    rows = _step_rows(("loop", None), encoder.layers, located_outer, outer, values, tensorflow,
                      judge, {})  # fmt: skip
    floors: dict[int, float] = {}
    for step, tensorflow in enumerate(generation.values):
        at_step = {name: values[stack][step] for name, stack in stacked.items()}
        rows += _step_rows(("loop", step), generation.layers, located_inner, inner, at_step,
                           tensorflow, judge, floors)  # fmt: skip
    return rows
