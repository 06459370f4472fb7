"""Exporting a seq2seq training model as two graphs: encoder and one step.

A graph unrolled over every output step would be huge, slow to build and fix
the number of steps, so the bundle holds ``encoder.onnx`` (encoder input ->
the decoder states that start from the encoder) and ``step.onnx`` (step input
and every decoder state -> step output and every new state), and the manifest
says how to run them: the state layout, the feedback rule and the start rule
(:class:`runtime.manifest.Seq2SeqSpec`). The runtime loops over the step graph.

Golden data holds one call of each graph and a whole TensorFlow generation
over the manifest's horizon, so that a machine without TensorFlow can check
the bundle end to end.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from parity.exporter.bundle_writer import placeholder_graph, write_bundle
from parity.exporter.keras_generation import reference_generate
from parity.exporter.loop import LOOP_GRAPH, generation_graph, generation_specs
from parity.exporter.split import Seq2SeqSplit, is_seq2seq, split_seq2seq
from parity.runtime.bundle_format.golden import GENERATION, START, input_key, output_key
from parity.runtime.bundle_format.manifest import FORMAT_VERSION, Manifest, Seq2SeqSpec, TensorSpec
from parity.runtime.errors import ParityError
from parity.runtime.generate import MAX_STEPS, check_steps
from parity.runtime.progress import Progress, silent
from parity.runtime.versions import tool_versions

__all__ = ["DEFAULT_STEPS", "export_seq2seq", "is_seq2seq"]

# The horizon recorded when neither the caller nor the model gives one.
DEFAULT_STEPS = 10

ENCODER_GRAPH = "encoder"
STEP_GRAPH = "step"


def export_seq2seq(
    model: Any,
    out_dir: Path,
    *,
    source_info: Mapping[str, str],
    opset: int = 17,
    steps: int | None = None,
    start_token: int = 0,
    golden_batch: int = 3,
    seed: int = 0,
    split: Seq2SeqSplit | None = None,
    progress: Progress = silent,
) -> Manifest:
    """Split ``model`` (see :func:`parity.exporter.split.split_seq2seq`), convert the
    encoder and the step model, and write the bundle at ``out_dir``.

    ``steps`` is the horizon the model was made for; by default the decoder
    input's fixed length, else :data:`DEFAULT_STEPS` (with a note in the
    manifest). ``start_token`` is the first token of a token decoder;
    ``split`` the model already split (split here when None); ``progress``
    hears one line as each stage starts."""
    from parity.exporter.convert import keras_to_onnx, simplified_graph

    if steps is not None:
        steps = check_steps(steps)  # before anything is built
    split = split or split_seq2seq(model, start_token=start_token)
    horizon, notes = _horizon(model, split, steps)
    progress("converting the encoder with tf2onnx, then simplifying it")
    encoder, encoder_note = simplified_graph(keras_to_onnx(split.encoder, opset=opset))
    progress("converting the step model with tf2onnx, then simplifying it")
    step, step_note = simplified_graph(keras_to_onnx(split.step, opset=opset))
    notes += [note for note in (encoder_note, step_note) if note]
    _check_names(split, encoder, step)
    spec = Seq2SeqSpec(
        encoder_graph=ENCODER_GRAPH,
        step_graph=STEP_GRAPH,
        encoder_input=split.encoder_input,
        step_input=split.step_input,
        step_output=split.step_output,
        states=split.states,
        feedback=split.feedback,
        steps=horizon,
        start=split.start,
        start_token=split.start_token,
        form=split.form,
        memories=split.memories,
        loop_graph=LOOP_GRAPH,
    )
    progress("building the loop graph")
    loop = generation_graph(encoder.proto, step.proto, spec, opset=opset)
    loop_inputs, loop_outputs = generation_specs(encoder.inputs, step.inputs, step.outputs, spec)
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        name=source_info.get("name") or model.name,
        kind="seq2seq",
        source=dict(source_info),
        opset=opset,
        versions=tool_versions(),
        graphs={
            ENCODER_GRAPH: placeholder_graph("encoder.onnx", encoder.inputs, encoder.outputs),
            STEP_GRAPH: placeholder_graph("step.onnx", step.inputs, step.outputs),
            LOOP_GRAPH: placeholder_graph("loop.onnx", loop_inputs, loop_outputs),
        },
        seq2seq=spec,
        notes=tuple(notes),
    )
    progress(f"golden data: TensorFlow's generation over {horizon} steps")
    golden = golden_data(split, manifest, golden_batch, seed)
    graph_bytes = {
        ENCODER_GRAPH: encoder.proto.SerializeToString(),
        STEP_GRAPH: step.proto.SerializeToString(),
        LOOP_GRAPH: loop.SerializeToString(),
    }
    progress(f"writing {out_dir}")
    return write_bundle(Path(out_dir), manifest, graph_bytes, golden)


def golden_data(
    split: Seq2SeqSplit, manifest: Manifest, batch: int, seed: int
) -> dict[str, np.ndarray]:
    """TensorFlow's answers for one call of each graph on random inputs, and
    for a whole generation over the manifest's horizon from the start rule."""
    from parity.runtime.generate import start_input
    from parity.runtime.sampling import sample_inputs

    golden: dict[str, np.ndarray] = {}
    for offset, (key, keras_model) in enumerate(
        ((ENCODER_GRAPH, split.encoder), (STEP_GRAPH, split.step))
    ):
        graph = manifest.graph(key)
        inputs = sample_inputs(graph.inputs, batch, seed=seed + offset).inputs
        outputs = _run(keras_model, inputs, graph.inputs, graph.outputs)
        golden.update({input_key(key, name): value for name, value in inputs.items()})
        golden.update({output_key(key, name): value for name, value in outputs.items()})
    spec = manifest.seq2seq
    encoder_inputs = {
        name: golden[input_key(ENCODER_GRAPH, name)]
        for name in (s.name for s in manifest.graph(ENCODER_GRAPH).inputs)
    }
    start = start_input(manifest, encoder_inputs)
    generation = reference_generate(split, encoder_inputs, start, spec.steps)
    golden.update({input_key(GENERATION, name): value for name, value in encoder_inputs.items()})
    golden[input_key(GENERATION, START)] = start
    golden[output_key(GENERATION, spec.step_output)] = generation
    return golden


def _run(
    keras_model: Any,
    inputs: Mapping[str, np.ndarray],
    input_specs: tuple[TensorSpec, ...],
    output_specs: tuple[TensorSpec, ...],
) -> dict[str, np.ndarray]:
    arrays = [inputs[spec.name] for spec in input_specs]
    values = keras_model(arrays[0] if len(arrays) == 1 else arrays, training=False)
    values = values if isinstance(values, list | tuple) else [values]
    return {spec.name: np.asarray(value) for spec, value in zip(output_specs, values, strict=True)}


def _horizon(model: Any, split: Seq2SeqSplit, steps: int | None) -> tuple[int, list[str]]:
    """The horizon: ``steps`` (already checked), else the decoder input's fixed
    length, which the runtime's limit (:data:`parity.runtime.generate.MAX_STEPS`)
    bounds too."""
    if steps is not None:
        return steps, []
    if split.horizon is not None:
        return split.horizon, []
    (decoder_input,) = [t for t in model.inputs if t.name == split.step_input]
    length = decoder_input.shape[1]
    if isinstance(length, int):
        if length > MAX_STEPS:
            raise ParityError(
                f"the model's decoder length {length} is beyond the limit of {MAX_STEPS} steps "
                "that the runtime generates"
            )
        return length, []
    return DEFAULT_STEPS, [
        f"the model does not fix its decoder length; the horizon recorded is {DEFAULT_STEPS} "
        "steps (give the horizon the model was made for at export)"
    ]


def _check_names(split: Seq2SeqSplit, encoder: Any, step: Any) -> None:
    """The manifest names graph inputs and outputs by the Keras names; make sure
    the conversion kept them, in order."""
    expected = {
        "encoder inputs": [split.encoder_input],
        "encoder outputs": [
            *(s.encoder_output for s in split.states if s.init == "encoder"),
            *(m.encoder_output for m in split.memories),
        ],
        "step inputs": [
            split.step_input,
            *(s.step_input for s in split.states),
            *(m.step_input for m in split.memories),
        ],
        "step outputs": [split.step_output, *(s.step_output for s in split.states)],
    }
    found = {
        "encoder inputs": [t.name for t in encoder.inputs],
        "encoder outputs": [t.name for t in encoder.outputs],
        "step inputs": [t.name for t in step.inputs],
        "step outputs": [t.name for t in step.outputs],
    }
    for what, names in expected.items():
        if found[what] != names:
            raise ParityError(
                f"converted {what} are named {found[what]}; expected {names} as in the Keras models"
            )
