"""TensorFlow's side of a verification, computed once and replayed against
ONNX Runtime as often as needed.

A :class:`TensorFlowRun` holds, for every draw of every graph, the inputs,
TensorFlow's float32 outputs and (where the model can be rebuilt in float64)
its float64 outputs; for a seq2seq model also whole generations. :func:`replay`
runs ONNX Runtime alone on a bundle and judges it against such a run, so a
damaged copy of a bundle can be judged without running TensorFlow again.
Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from parity.runtime.bundle import Bundle
from parity.runtime.errors import quoted
from parity.verify.compare import Check, compare_outputs
from parity.verify.generation import compare_generation, step_floors
from parity.verify.report import StepErrors
from parity.verify.runners import OnnxRuntimeRunner
from parity.verify.tolerance import PAIR_FACTOR, Tolerance, TolerancePolicy

T = TypeVar("T")
# Where float64 did not run, the loop graph and the step loop are held to this
# allclose tolerance: a hundredth of the default (both run the same kernels).
PAIR_FALLBACK = Tolerance(atol=1e-7, rtol=1e-6)


@dataclass(frozen=True)
class GraphDraw:
    """One call of one graph: its inputs and TensorFlow's outputs for them."""

    graph: str  # the graph's key in the manifest
    kind: str  # the kind of its checks: "output", "encoder" or "step"
    label: str  # what the draw is, e.g. "batch=3 time=5"
    inputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]  # TensorFlow in float32
    exact: dict[str, np.ndarray] | None  # TensorFlow in float64

    def check_name(self, output: str) -> str:
        """The name of the check of one output of this draw."""
        prefix = "" if self.kind == "output" else f"{self.graph}/"
        return f"{prefix}{output} {self.label}"


@dataclass(frozen=True)
class GenerationDraw:
    """One whole generation: the encoder inputs, the first step input and
    TensorFlow's stacked step outputs."""

    label: str  # e.g. "batch=3"
    encoder_inputs: dict[str, np.ndarray]
    start: np.ndarray
    steps: int
    expected: np.ndarray  # TensorFlow in float32
    exact: np.ndarray | None  # TensorFlow in float64


@dataclass(frozen=True)
class TensorFlowRun:
    """Everything TensorFlow computed for one verification."""

    draws: tuple[GraphDraw, ...]
    generations: tuple[GenerationDraw, ...] = ()
    float64: str = ""  # why float64 did not run; "" when it did

    def without_float64(self, reason: str) -> TensorFlowRun:
        """The same run with no float64 outputs anywhere, and the reason:
        every check then takes the allclose rule, none the noise rule."""
        return TensorFlowRun(
            tuple(dataclasses.replace(draw, exact=None) for draw in self.draws),
            tuple(dataclasses.replace(g, exact=None) for g in self.generations),
            reason,
        )


class Float64Twin:
    """Runs TensorFlow's float64 twin of a model where it can: a model can be
    rebuilt in float64 and still fail to run (TensorFlow has no float64
    kernel for ``MaxPool3D``, say). The first failure turns it off, with the
    reason; the caller then drops every float64 output
    (:meth:`TensorFlowRun.without_float64`).

    Args:
        reason: why there is no twin ("" when there is one).
    """

    def __init__(self, reason: str = "") -> None:
        self.reason = reason

    def run(self, compute: Callable[[], T]) -> T | None:
        """``compute()``'s result, or None once the twin is off."""
        if self.reason:
            return None
        try:
            return compute()
        except Exception as exc:  # TensorFlow raises many types for a missing kernel
            self.reason = f"the float64 rebuild cannot run ({quoted(exc, 200)})"
            return None

    def finish(self, run: TensorFlowRun) -> TensorFlowRun:
        """``run`` as it is when the twin ran throughout, else without float64."""
        return run.without_float64(self.reason) if self.reason else run


def replay(
    bundle: Bundle, run: TensorFlowRun, policy: TolerancePolicy
) -> tuple[list[Check], list[StepErrors]]:
    """ONNX Runtime on ``bundle`` judged against TensorFlow's ``run``: every
    graph on its own draws, then every generation along the step loop and the
    loop graph, each against TensorFlow, and the loop graph against the step loop.

    Args:
        bundle: the loaded bundle (a damaged copy too: nothing of it is cached).
        run: TensorFlow's side, from :func:`parity.verify.check.tensorflow_run`.
        policy: the rule and tolerances.
    """
    checks: list[Check] = []
    curves: list[StepErrors] = []
    for draw in run.draws:
        graph = bundle.manifest.graph(draw.graph)
        checks += compare_outputs(
            draw.expected,
            OnnxRuntimeRunner(bundle, draw.graph).run(draw.inputs),
            [spec.name for spec in graph.outputs],
            policy,
            kind=draw.kind,
            check_name=draw.check_name,
            exact=draw.exact,
        )
    for generation in run.generations:
        checks_, curves_ = replay_generation(bundle, generation, policy)
        checks += checks_
        curves += curves_
    return checks, curves


def replay_generation(
    bundle: Bundle, generation: GenerationDraw, policy: TolerancePolicy
) -> tuple[list[Check], list[StepErrors]]:
    """One generation along every path of :func:`generation_paths`, each held
    to TensorFlow's, and the loop graph held to the step loop far more tightly:
    both run the same kernels in the same runtime, so they may differ by at
    most :data:`PAIR_FACTOR` times TensorFlow's float32 noise at each step
    (:data:`PAIR_FALLBACK` where float64 did not run).

    Args:
        bundle: the loaded seq2seq bundle.
        generation: TensorFlow's generation and its inputs.
        policy: the rule and tolerances.
    """
    from parity.runtime import generate

    spec = bundle.manifest.seq2seq
    output = spec.step_output
    label = f"{generation.label} steps={generation.steps}"
    checks, curves, produced = [], [], {}
    for path in generation_paths(bundle):
        produced[path] = np.asarray(
            generate(
                bundle,
                generation.encoder_inputs,
                start=generation.start,
                steps=generation.steps,
                use_loop_graph=path == "loop graph",
            )
        )
        check, curve = compare_generation(
            f"generation/{output} ({path}) {label}",
            output,
            generation.expected,
            produced[path],
            policy,
            exact=generation.exact,
        )
        checks.append(check)
        curves.append(curve)
    if len(produced) == 2:
        step_loop, loop_graph = produced["step loop"], produced["loop graph"]
        name = f"generation/{output} (loop graph vs step loop) {label}"
        if generation.exact is not None and step_loop.shape == generation.expected.shape:
            check, curve = compare_generation(
                name, output, step_loop, loop_graph, policy, exact=step_loop.astype(np.float64),
                floors=step_floors(generation.expected, generation.exact), factor=PAIR_FACTOR,
                kind="loop-vs-step",
            )  # fmt: skip
        else:
            fallback = TolerancePolicy(PAIR_FALLBACK, growth=policy.growth, fixed=True)
            check, curve = compare_generation(
                name, output, step_loop, loop_graph, fallback, kind="loop-vs-step"
            )
        checks.append(check)
        curves.append(curve)
    return checks, curves


def generation_paths(bundle: Bundle) -> tuple[str, ...]:
    """The ways the runtime can generate from a bundle: the Python step loop,
    and the one-call loop graph when the bundle has one. Each is checked.

    Args:
        bundle: the loaded seq2seq bundle.
    """
    if bundle.manifest.seq2seq.loop_graph is None:
        return ("step loop",)
    return ("step loop", "loop graph")
