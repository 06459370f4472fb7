"""TensorFlow's side for seq2seq bundles: encoder, step, and whole generations.

The encoder and step graphs each get draws of their own, held against the
Keras models that the splitter builds from the same trained layers (random
inputs and random states, or the caller's inputs with the states the encoder
gives them); whole generations are TensorFlow's reference generation over the
horizon. Each is computed in float32 and, where the models can be rebuilt so,
in float64 (:mod:`verify.noise`). :func:`parity.verify.stored.replay` then holds
ONNX Runtime's encoder, step and loop graphs to them, each on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from parity.runtime.bundle import Bundle
from parity.runtime.sampling import sample_inputs
from parity.verify.runners import KerasRunner, TensorFlowDevice, on_device
from parity.verify.stored import Float64Twin, GenerationDraw, GraphDraw, TensorFlowRun

Progress = Callable[[str], None]


def seq2seq_run(
    bundle: Bundle,
    keras_model: Any,
    batches: Sequence[int],
    steps: int,
    device: TensorFlowDevice,
    seed: int,
    progress: Progress,
    user_inputs: Mapping[str, np.ndarray] | None = None,
) -> TensorFlowRun:
    """TensorFlow's encoder, step and generation outputs for a seq2seq bundle.

    Args:
        bundle: the loaded seq2seq bundle (its manifest gives the graphs' inputs).
        keras_model: the trained Keras model the bundle was exported from.
        batches: one random draw of each graph per batch size; generations run
            at the smallest and the largest.
        steps: the horizon of each generation.
        device: where TensorFlow runs.
        seed: the seed of the random draws.
        progress: called with a short line as each stage starts.
        user_inputs: the caller's arrays (already checked): the encoder's inputs
            and, optionally, the decoder input, whose first step starts the
            generation and feeds the step graph. Replaces the random draws.
    """
    from parity.exporter.split import split_seq2seq
    from parity.verify.noise import float64_split

    spec = bundle.manifest.seq2seq
    split = split_seq2seq(keras_model, start_token=spec.start_token or 0)
    exact_split, reason = float64_split(split)
    twin = Float64Twin(reason)
    models = {"encoder": split.encoder, "step": split.step}
    exact_models = {} if exact_split is None else {"encoder": exact_split.encoder,
                                                    "step": exact_split.step}  # fmt: skip

    def graph_draw(key: str, label: str, inputs: dict[str, np.ndarray]) -> GraphDraw:
        def run(model: Any) -> dict[str, np.ndarray]:
            return KerasRunner(model, device).run(inputs)

        exact = twin.run(lambda: run(exact_models[key]))
        return GraphDraw(key, key, label, inputs, run(models[key]), exact)

    def generation_draw(label: str, encoder_inputs: dict, start: np.ndarray) -> GenerationDraw:
        from parity.exporter.keras_generation import reference_generate

        progress(f"generation: {label}, {steps} steps")
        with on_device(device):
            expected = reference_generate(split, encoder_inputs, start, steps)
            exact = twin.run(lambda: reference_generate(exact_split, encoder_inputs, start, steps))
        return GenerationDraw(label, dict(encoder_inputs), start, steps, expected, exact)

    encoder = bundle.manifest.graph("encoder")
    step = bundle.manifest.graph("step")
    draws: list[GraphDraw] = []
    generations: list[GenerationDraw] = []
    if user_inputs is not None:
        progress("your inputs")
        encoder_inputs = {s.name: user_inputs[s.name] for s in encoder.inputs}
        draws.append(graph_draw("encoder", "on your inputs", encoder_inputs))
        start = _start(bundle, encoder_inputs, user_inputs.get(spec.step_input))
        encoded = draws[0].expected
        step_inputs = {spec.step_input: start}
        for state in spec.states:
            step_inputs[state.step_input] = (
                encoded[state.encoder_output]
                if state.init == "encoder"
                else np.zeros((start.shape[0], state.size), np.float32)
            )
        for memory in spec.memories:
            step_inputs[memory.step_input] = encoded[memory.encoder_output]
        draws.append(graph_draw("step", "on your inputs", step_inputs))
        generations.append(generation_draw("on your inputs", encoder_inputs, start))
        return twin.finish(TensorFlowRun(tuple(draws), tuple(generations)))
    for key, graph in (("encoder", encoder), ("step", step)):
        progress(f"{key} graph")
        for index, batch in enumerate(batches):
            sample = sample_inputs(graph.inputs, batch, seed=seed + index)
            draws.append(graph_draw(key, f"batch={batch}", sample.inputs))
    for index, batch in enumerate(sorted({min(batches), max(batches)})):
        sample = sample_inputs(encoder.inputs, batch, seed=seed + 100 + index)
        start = _start(bundle, sample.inputs, None)
        generations.append(generation_draw(f"batch={batch}", sample.inputs, start))
    if spec.form == "unrolled" and steps == spec.steps:
        # The user's own model computes the whole horizon: the re-rolled
        # graphs must give what it gives, not only what the split gives.
        last = generations[-1]
        progress("your unrolled model")
        feeds = {**last.encoder_inputs, spec.step_input: last.start}
        (expected,) = KerasRunner(keras_model, device).run(feeds).values()
        generations.append(
            GenerationDraw(
                f"{last.label}, your unrolled model", last.encoder_inputs, last.start, steps,
                expected, None,  # no float64 twin of the user's model: the allclose rule
            )
        )  # fmt: skip
    return twin.finish(TensorFlowRun(tuple(draws), tuple(generations)))


def _start(
    bundle: Bundle, encoder_inputs: Mapping[str, np.ndarray], decoder: np.ndarray | None
) -> np.ndarray:
    """The first step input: the decoder input's first step where the caller
    gives one, else the manifest's start rule, so that both runtimes start from
    the same array."""
    from parity.runtime.generate import start_input

    if decoder is not None:
        spec = bundle.manifest.seq2seq
        dtype = bundle.manifest.graph("step").input(spec.step_input).dtype
        return np.ascontiguousarray(np.asarray(decoder)[:, :1], dtype=dtype)
    return start_input(bundle.manifest, encoder_inputs)
