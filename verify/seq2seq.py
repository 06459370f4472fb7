"""Checks for seq2seq bundles: encoder, step, and the whole generation.

The encoder and step graphs are each held against the Keras models that the
splitter builds from the same trained layers, on random inputs and random
states; then ONNX Runtime's free-running generation is held against
TensorFlow's reference generation over the whole horizon.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from parity.runtime.bundle import Bundle
from parity.runtime.bundle_format.manifest import GraphSpec
from parity.runtime.sampling import sample_inputs
from parity.verify.compare import Check, compare_outputs
from parity.verify.generation import compare_generation
from parity.verify.report import StepErrors
from parity.verify.runners import Runner, TensorFlowDevice, on_device
from parity.verify.tolerance import TolerancePolicy

if TYPE_CHECKING:  # the exporter's package imports onnx, which bundle-only checks do not need
    from parity.exporter.split import Seq2SeqSplit

Progress = Callable[[str], None]


def check_graph_against_keras(
    label: str,
    tensorflow: Runner,
    onnxruntime: Runner,
    graph: GraphSpec,
    batches: Sequence[int],
    policy: TolerancePolicy,
    seed: int,
) -> list[Check]:
    """One graph of the bundle against its Keras counterpart on random inputs
    (states included: they are inputs of the step graph like any other).

    Args:
        label: the graph's name in the checks ("encoder", "step"), also their kind.
        tensorflow: the Keras counterpart, the reference.
        onnxruntime: the bundle's graph.
        graph: the graph's signature, from the manifest.
        batches: one random draw per batch size.
        policy: the tolerances.
        seed: the seed of the first draw; each later draw adds one.
    """
    checks = []
    for index, batch in enumerate(batches):
        sample = sample_inputs(graph.inputs, batch, seed=seed + index)
        checks += compare_outputs(
            tensorflow.run(sample.inputs),
            onnxruntime.run(sample.inputs),
            [spec.name for spec in graph.outputs],
            policy,
            kind=label,
            check_name=lambda output, batch=batch: f"{label}/{output} batch={batch}",
        )
    return checks


def check_generation(
    bundle: Bundle,
    split: Seq2SeqSplit,
    batches: Sequence[int],
    steps: int,
    policy: TolerancePolicy,
    device: TensorFlowDevice,
    seed: int,
    progress: Progress,
) -> tuple[list[Check], list[StepErrors]]:
    """ONNX Runtime's generation against TensorFlow's reference, step by step,
    along each of :func:`generation_paths`.

    Args:
        bundle: the loaded seq2seq bundle.
        split: the Keras encoder and step models split from the trained model.
        batches: one generation per batch size, from random encoder inputs.
        steps: the horizon of each generation.
        policy: the tolerances and their growth over the steps.
        device: where TensorFlow generates.
        seed: the seed of the random encoder inputs (offset by 100 and the batch's index).
        progress: called with a short line as each generation starts.
    """
    from parity.runtime import generate
    from parity.verify.reference import reference_generate

    spec = bundle.manifest.seq2seq
    encoder = bundle.manifest.graph("encoder")
    checks, curves = [], []
    for index, batch in enumerate(batches):
        progress(f"generation: batch {batch}, {steps} steps")
        sample = sample_inputs(encoder.inputs, batch, seed=seed + 100 + index)
        start = _start_input(bundle, sample.inputs)
        with on_device(device):
            expected = reference_generate(split, sample.inputs, start, steps)
        for path in generation_paths(bundle):
            actual = generate(
                bundle,
                sample.inputs,
                start=start,
                steps=steps,
                use_loop_graph=path == "loop graph",
            )
            check, curve = compare_generation(
                f"generation/{spec.step_output} ({path}) batch={batch} steps={steps}",
                spec.step_output,
                np.asarray(expected),
                np.asarray(actual),
                policy,
            )
            checks.append(check)
            curves.append(curve)
    return checks, curves


def _start_input(bundle: Bundle, encoder_inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The first step's input as the manifest's start rule gives it, so that
    both runtimes start from the same array."""
    from parity.runtime.generate import start_input

    return start_input(bundle.manifest, encoder_inputs)


def generation_paths(bundle: Bundle) -> tuple[str, ...]:
    """The ways the runtime can generate from a bundle: the Python step loop,
    and the one-call loop graph when the bundle has one. Each is checked.

    Args:
        bundle: the loaded seq2seq bundle.
    """
    if bundle.manifest.seq2seq.loop_graph is None:
        return ("step loop",)
    return ("step loop", "loop graph")
