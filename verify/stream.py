"""Verifying a stream bundle against its Keras model, chunk by chunk.

TensorFlow's side is the model itself: a stateful model called chunk after
chunk, its layers' states carried in their own variables and reset row by
row where the stream resets (:class:`parity.exporter.keras_stream.StatefulKeras`);
for a stateless model exported with ``--streaming``, its stateless twin fed
its states back (:class:`~parity.exporter.keras_stream.TwinStream`). ONNX
Runtime's side is :class:`parity.runtime.Stream`. Both are fed the same
sequences (a masked model's with masked steps anywhere) in the same chunks
(:func:`schedules`: all at once, one step at a time, random lengths, random
lengths with some rows reset half way), and:

- per schedule and output, each chunk is held to the noise rule on its own:
  ONNX Runtime's difference from TensorFlow's output within 10 times the
  float32 noise floor, which is the stateless twin's float32 error against
  the twin rebuilt in float64, both fed the same chunks (the chunk's floor,
  never below an earlier chunk's: an error carried in the states
  compounds). The floor comes from the twin alone, so that a twin that
  strayed from the stateful model could not widen it. The report gives the
  error against the chunk index, as it does a generation's steps; the final
  states are held to the same rule;
- in each runtime alone, the invariant of a stream: chunked as the schedule
  says, it gives what one call over the whole sequence gives, at valid steps
  and for the states (a per-chunk output: what one call over the steps up
  to the chunk's end gives), and a row reset before a chunk gives what a
  fresh stream gives from there; within TensorFlow's float32 noise floor
  once (:data:`parity.verify.tolerance.PAIR_FACTOR`). Outputs at masked
  steps are left out and their differences noted: Keras restarts its
  repetition of the last valid output at every call, in both runtimes alike;
- for a ``--streaming`` bundle, the stream fed in random chunks against one
  call of the stateless model itself, at valid steps.

A model built for a fixed number of steps takes chunks of that length only:
other chunkings are held to its stateless twin (a note says so). The bundle's
golden stream is replayed with ONNX Runtime alone by
:func:`check_stream_golden`. Importing this module does not import TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from parity.runtime.bundle import Bundle
from parity.runtime.bundle_format.golden import STREAM_CHUNKS, input_key, output_key
from parity.runtime.errors import ParityError, RunError
from parity.runtime.progress import Progress
from parity.runtime.sampling import sample_stream
from parity.runtime.stream import open_stream, run_schedule
from parity.verify.compare import Check, compare_arrays, failed_check
from parity.verify.options import VerifyOptions
from parity.verify.report import StepErrors
from parity.verify.stored import Float64Twin
from parity.verify.stream_compare import (
    KIND,
    STATES,
    Rounding,
    Run,
    compare_run,
    noise_floors,
)
from parity.verify.stream_invariance import invariance, valid_steps
from parity.verify.tolerance import TolerancePolicy

# Random chunks are 1 to this many steps long.
LONGEST_CHUNK = 7


@dataclass(frozen=True)
class Schedule:
    """Chunk lengths, and the rows reset before the middle chunk."""

    name: str
    chunks: tuple[int, ...]
    reset_rows: tuple[int, ...] = ()

    def resets(self, batch: int) -> np.ndarray | None:
        """``(chunks, batch)`` booleans for :func:`parity.runtime.stream.run_schedule`."""
        if not self.reset_rows:
            return None
        resets = np.zeros((len(self.chunks), batch), bool)
        resets[len(self.chunks) // 2, list(self.reset_rows)] = True
        return resets


@dataclass(frozen=True)
class StreamVerification:
    """The checks of a stream bundle, the error per chunk of each, notes, and
    why the float64 reference did not run ("" when it did)."""

    checks: tuple[Check, ...]
    curves: tuple[StepErrors, ...]
    notes: tuple[str, ...]
    float64: str


def schedules(steps: int, batch: int, seed: int = 0) -> tuple[Schedule, ...]:
    """The chunkings every stream is verified in: all at once, one step at a
    time, random lengths (1 to :data:`LONGEST_CHUNK`), and the same random
    lengths with every other row (row 0 of one) reset before the middle chunk.

    Args:
        steps: the length of the whole sequence.
        batch: the number of rows.
        seed: the seed of the random lengths.
    """
    rng = np.random.default_rng(seed)
    lengths: list[int] = []
    while sum(lengths) < steps:
        lengths.append(int(rng.integers(1, LONGEST_CHUNK + 1)))
    lengths[-1] -= sum(lengths) - steps
    rows = tuple(range(1, batch, 2)) or (0,)
    return (
        Schedule("whole", (steps,)),
        Schedule("one step at a time", (1,) * steps),
        Schedule("random chunks", tuple(lengths)),
        Schedule("random chunks, rows reset", tuple(lengths), rows),
    )


def check_stream(
    bundle: Bundle,
    keras_model: Any,
    options: VerifyOptions,
    tf_device: Any,
    progress: Progress | None = None,
) -> StreamVerification:
    """Verify a stream bundle against its Keras model (see the module docstring).

    Args:
        bundle: the loaded stream bundle.
        keras_model: the functional Keras model it was exported from; a
            stateful model's states are as they were found afterwards.
        options: the rule and tolerances, the seed, the batch (a stateless
            model's: the largest of ``batches``) and the length of the
            sequences (the largest of ``times``).
        tf_device: where TensorFlow runs (:func:`parity.verify.runners.select_device`).
        progress: called with a short line as each stage starts.

    Raises:
        ParityError: the model is not the one the bundle was exported from.
    """
    say = progress or (lambda message: None)
    keras = _KerasSide(keras_model, bundle.manifest.streaming, options)
    try:
        return _verified(bundle, keras, options, tf_device, say)
    finally:
        keras.restore()


def _verified(
    bundle: Bundle, keras: _KerasSide, options: VerifyOptions, tf_device: Any, say: Progress
) -> StreamVerification:
    """:func:`check_stream`, once TensorFlow's side is set up."""
    from parity.verify.runners import on_device

    spec, mask, policy = bundle.manifest.streaming, bundle.manifest.mask, options.policy
    per = {output.name: output.per for output in spec.outputs}
    graph = bundle.manifest.graph(spec.graph)
    inputs = sample_stream(
        [graph.input(name) for name in spec.inputs], keras.batch, keras.steps, mask, options.seed
    )
    valid = valid_steps(inputs, mask)
    with on_device(tf_device):
        runs, float64 = keras.runs(inputs, say)
    notes = list(keras.notes)
    checks: list[Check] = []
    curves: list[StepErrors] = []
    onnx: dict[Schedule, Run] = {}

    def stream(_: tuple[int, ...]) -> Any:
        return open_stream(bundle, keras.batch)

    try:
        for schedule, (expected, rounding) in runs.items():
            say(f"stream, {schedule.name}: onnxruntime chunk by chunk")
            onnx[schedule] = run_schedule(
                stream(schedule.chunks), inputs, schedule.chunks, schedule.resets(keras.batch)
            )
            checks_, curves_ = compare_run(
                schedule.name, schedule.chunks, expected, onnx[schedule], rounding, policy, per
            )
            checks += checks_
            curves += curves_
        floors = noise_floors(next(iter(runs.values()))[1])
        sides = {"tensorflow": (keras.stream, {s: run for s, (run, _) in runs.items()}),
                 "onnxruntime": (stream, onnx)}  # fmt: skip
        for runtime, (make, done) in sides.items():
            say(f"stream: {runtime} chunked against one call")
            with on_device(tf_device):
                checks_, notes_ = invariance(runtime, make, done, inputs, valid, floors, per)
            checks += checks_
            notes += notes_
    except RunError as exc:
        checks.append(failed_check("stream: onnxruntime failed", "run", str(exc)))
        return StreamVerification(tuple(checks), tuple(curves), tuple(notes), float64)
    if spec.source == "streaming":
        say("stream: onnxruntime chunked against one call of the model")
        random = next(s for s in onnx if s.name == "random chunks")
        checks += _against_one_call(
            keras.model, tf_device, random, onnx[random], inputs, valid, policy, per
        )
    return StreamVerification(tuple(checks), tuple(curves), tuple(notes), float64)


class _KerasSide:
    """TensorFlow's side of a stream's verification: the model's plan and
    stateless twin, the batch and length to verify at, and its runs.

    A stateful model is its own reference, but takes only chunks of its fixed
    number of steps where it has one; then the other chunkings are the twin's.
    """

    def __init__(self, model: Any, spec: Any, options: VerifyOptions) -> None:
        from parity.exporter.keras_graph import model_inputs
        from parity.exporter.stream_plan import plan_stream
        from parity.exporter.stream_twin import stateless_twin

        self.model = model
        self.plan = plan_stream(model, streaming=spec.source == "streaming")
        self.twin = stateless_twin(model, self.plan)
        ours = (self.plan.source, self.twin.states, self.twin.outputs)
        if ours != (spec.source, spec.states, spec.outputs):
            raise ParityError(
                f"model {model.name!r} is not the model the stream bundle was exported from "
                "(its states or outputs differ); re-export it"
            )
        shapes = [tuple(tensor.shape) for tensor in model_inputs(model)]
        batches = {shape[0] for shape in shapes} - {None}
        times = {shape[1] for shape in shapes} - {None}
        fixed = int(times.pop()) if len(times) == 1 else None
        self.batch = int(
            self.plan.keras_batch or (batches.pop() if batches else max(options.batches))
        )
        self.stateful = self.plan.source == "stateful"
        # a stateful model built for a fixed number of steps takes chunks of
        # that length only: several of them; a stateless one is called once
        self.fixed = fixed if self.stateful else None
        self.steps = fixed or max(options.times)
        if self.fixed:
            self.steps = fixed * max(2, -(-max(options.times) // fixed))
        self.schedules = list(schedules(self.steps, self.batch, options.seed))
        self.notes: tuple[str, ...] = ()
        self.found = self._stateful_keras().states if self.stateful else None
        if self.fixed:
            chunks = (fixed,) * (self.steps // fixed)
            self.schedules.insert(1, Schedule(f"chunks of {fixed}", chunks))
            self.notes = (
                f"model {model.name!r} takes chunks of {fixed} steps only: other chunkings are "
                "held to its stateless twin",
            )

    def stream(self, chunks: tuple[int, ...]) -> Any:
        """A fresh reference stream for ``chunks``: the stateful model itself
        where it takes them, else the twin in float32."""
        from parity.exporter.keras_stream import TwinStream

        if self.stateful and (not self.fixed or set(chunks) == {self.fixed}):
            return self._stateful_keras()
        return TwinStream(self.twin, self.batch)

    def restore(self) -> None:
        """Leave a stateful model's states as they were found."""
        if self.found is not None:
            self._stateful_keras().set_states(self.found)

    def _stateful_keras(self) -> Any:
        from parity.exporter.keras_stream import StatefulKeras

        return StatefulKeras(self.model, self.plan)

    def runs(
        self, inputs: Mapping[str, np.ndarray], say: Progress
    ) -> tuple[dict[Schedule, tuple[Run, Rounding | None]], str]:
        """Each schedule's reference run and the twin's runs in float32 and
        float64 (None where float64 did not run), and why float64 did not
        run ("" when it did)."""
        from parity.exporter.keras_stream import TwinStream
        from parity.verify.noise import float64_model

        exact_model, reason = float64_model(self.twin.model)
        exact = Float64Twin(reason)
        runs = {}
        for schedule in self.schedules:
            say(f"stream, {schedule.name}: tensorflow chunk by chunk")
            resets = schedule.resets(self.batch)
            reference = self.stream(schedule.chunks)
            expected = run_schedule(reference, inputs, schedule.chunks, resets)
            precise = exact.run(
                lambda r=resets, c=schedule.chunks: run_schedule(
                    TwinStream(self.twin, self.batch, model=exact_model, dtype=np.float64),
                    inputs, c, r,
                )
            )  # fmt: skip
            single = expected
            if precise is not None and not isinstance(reference, TwinStream):
                single = run_schedule(
                    TwinStream(self.twin, self.batch), inputs, schedule.chunks, resets
                )
            runs[schedule] = (expected, None if precise is None else (single, precise))
        if exact.reason:
            runs = {schedule: (expected, None) for schedule, (expected, _) in runs.items()}
        return runs, exact.reason


def check_stream_golden(
    bundle: Bundle, golden: Mapping[str, np.ndarray], policy: TolerancePolicy
) -> list[Check]:
    """The bundle's golden stream replayed with ONNX Runtime alone: every
    output and the final states against TensorFlow's (the allclose rule:
    golden data holds float32 only).

    Args:
        bundle: the loaded stream bundle.
        golden: its golden arrays (:func:`parity.runtime.bundle_format.golden.read_golden`).
        policy: the tolerances.

    Raises:
        RunError: ONNX Runtime failed (a failed check to the caller).
    """
    spec = bundle.manifest.streaming
    prefix = f"{STREAM_CHUNKS}/"
    if f"{prefix}lengths" not in golden:
        return []
    inputs = {name: golden[input_key(STREAM_CHUNKS, name)] for name in spec.inputs}
    chunks = tuple(int(n) for n in golden[f"{prefix}lengths"])
    batch = next(iter(inputs.values())).shape[0]
    outputs, states = run_schedule(
        open_stream(bundle, batch), inputs, chunks, golden[f"{prefix}resets"]
    )
    checks = []
    for name, value in outputs.items():
        checks.append(
            compare_arrays(f"golden {STREAM_CHUNKS}/{name}", "golden",
                           golden[output_key(STREAM_CHUNKS, name)], value,
                           policy.for_output(name), output=name)
        )  # fmt: skip
    for name, value in states.items():
        checks.append(
            compare_arrays(f"golden {STREAM_CHUNKS}/{name}", "golden",
                           golden[f"{prefix}states/{name}"], value,
                           policy.for_output(STATES), output=STATES)
        )  # fmt: skip
    return checks


def _against_one_call(
    model: Any,
    tf_device: Any,
    schedule: Schedule,
    run: Run,
    inputs: Mapping[str, np.ndarray],
    valid: np.ndarray | None,
    policy: TolerancePolicy,
    per: Mapping[str, str],
) -> list[Check]:
    """A ``--streaming`` bundle: the stream fed in ``schedule``'s chunks
    against one call of the stateless model over the whole sequence, at
    valid steps; a per-chunk output's last chunk against the model's output,
    for the rows with a valid step in it."""
    from parity.verify.noise import float64_model
    from parity.verify.runners import KerasRunner

    expected = KerasRunner(model, tf_device).run(inputs)
    exact_model, reason = float64_model(model)
    exact = Float64Twin(reason).run(lambda: KerasRunner(exact_model, tf_device).run(inputs))
    last = schedule.chunks[-1]
    checks = []
    for name, value in run[0].items():
        if per[name] == "chunk":
            rows = slice(None) if valid is None else valid[:, -last:].any(axis=1)
            got = value[-1][rows]
        else:
            rows = slice(None) if valid is None else valid
            got = value[rows]
        want = expected[name][rows]
        precise = None if exact is None or not policy.uses_noise(name) else exact[name][rows]
        checks.append(
            compare_arrays(f"stream {schedule.name} against one call of the model/{name}", KIND,
                           want, got, policy.for_output(name), exact=precise,
                           factor=policy.noise_factor, output=name)
        )  # fmt: skip
    return checks
