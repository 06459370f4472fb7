"""Checks for seq2seq bundles: encoder, step, and the whole generation.

The encoder and step graphs are each held against the Keras models that the
splitter builds from the same trained layers, on random inputs and random
states; then ONNX Runtime's free-running generation is held against
TensorFlow's reference generation over the whole horizon.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from parity.runtime.bundle_format.manifest import GraphSpec
from parity.runtime.sampling import sample_inputs
from parity.verify.compare import Check, compare_arrays
from parity.verify.generation import compare_generation
from parity.verify.keras_side import TensorFlowDevice, on_device, run_keras
from parity.verify.report import StepErrors
from parity.verify.tolerance import TolerancePolicy

Progress = Callable[[str], None]


def check_graph_against_keras(
    label: str,
    bundle: Any,
    graph_key: str,
    keras_model: Any,
    batches: Sequence[int],
    policy: TolerancePolicy,
    device: TensorFlowDevice,
    seed: int,
) -> list[Check]:
    """One graph of the bundle against its Keras counterpart on random inputs
    (states included: they are inputs of the step graph like any other)."""
    graph: GraphSpec = bundle.manifest.graph(graph_key)
    checks = []
    for index, batch in enumerate(batches):
        sample = sample_inputs(graph.inputs, batch, seed=seed + index)
        expected = run_keras(keras_model, sample.inputs, device)
        actual = bundle.run(sample.inputs, graph=graph_key)
        for spec in graph.outputs:
            checks.append(
                compare_arrays(
                    f"{label}/{spec.name} batch={batch}",
                    label,
                    expected[spec.name],
                    actual[spec.name],
                    policy.for_output(spec.name),
                )
            )
    return checks


def check_generation(
    bundle: Any,
    split: Any,
    batches: Sequence[int],
    steps: int,
    policy: TolerancePolicy,
    device: TensorFlowDevice,
    seed: int,
    progress: Progress,
) -> tuple[list[Check], list[StepErrors]]:
    """ONNX Runtime's generation against TensorFlow's reference, step by step."""
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


def _start_input(bundle: Any, encoder_inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The first step's input as the manifest's start rule gives it, so that
    both runtimes start from the same array."""
    from parity.runtime.generate import start_input

    return start_input(bundle.manifest, encoder_inputs)


def generation_paths(bundle: Any) -> tuple[str, ...]:
    """The ways the runtime can generate from ``bundle``: the Python step loop,
    and the one-call loop graph when the bundle has one. Each is checked."""
    if bundle.manifest.seq2seq.loop_graph is None:
        return ("step loop",)
    return ("step loop", "loop graph")
