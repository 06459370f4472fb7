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

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from parity.runtime.bundle import Bundle
from parity.runtime.bundle_format.golden import STREAM_CHUNKS, input_key, output_key
from parity.runtime.bundle_format.manifest import MaskSpec
from parity.runtime.errors import ParityError, RunError
from parity.runtime.sampling import sample_stream
from parity.runtime.stream import open_stream, run_schedule
from parity.verify.compare import Check, compare_arrays, failed_check, noise_of
from parity.verify.options import VerifyOptions
from parity.verify.report import StepErrors, describe_failure
from parity.verify.stored import PAIR_FALLBACK, Float64Twin
from parity.verify.tolerance import PAIR_FACTOR, TolerancePolicy

KIND = "stream"
INVARIANCE = "stream-invariance"
# Random chunks are 1 to this many steps long.
LONGEST_CHUNK = 7

Run = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]  # outputs, final states
Rounding = tuple[Run, Run]  # the stateless twin's run in float32 and in float64
Progress = Callable[[str], None]


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
    from parity.exporter.keras_stream import StatefulKeras, TwinStream
    from parity.exporter.stream_plan import plan_stream
    from parity.exporter.stream_twin import stateless_twin
    from parity.verify.noise import float64_model
    from parity.verify.runners import on_device

    say = progress or (lambda message: None)
    spec, mask, policy = bundle.manifest.streaming, bundle.manifest.mask, options.policy
    per = {output.name: output.per for output in spec.outputs}
    plan = plan_stream(keras_model, streaming=spec.source == "streaming")
    twin = stateless_twin(keras_model, plan)
    if (plan.source, twin.states, twin.outputs) != (spec.source, spec.states, spec.outputs):
        raise ParityError(
            f"model {keras_model.name!r} is not the model the stream bundle was exported from "
            "(its states or outputs differ); re-export it"
        )
    batch, fixed = _batch_and_steps(keras_model, plan, options)
    steps = fixed or max(options.times)
    if fixed and plan.source == "stateful":
        steps = fixed * max(2, -(-max(options.times) // fixed))
    graph = bundle.manifest.graph(spec.graph)
    inputs = sample_stream([graph.input(n) for n in spec.inputs], batch, steps, mask, options.seed)
    plan_of_runs = list(schedules(steps, batch, options.seed))
    if fixed and plan.source == "stateful":
        plan_of_runs.insert(1, Schedule(f"chunks of {fixed}", (fixed,) * (steps // fixed)))
    exact_model, reason = float64_model(twin.model)
    exact = Float64Twin(reason)
    stateful = StatefulKeras(keras_model, plan) if plan.source == "stateful" else None
    found = stateful.states if stateful else None
    notes: list[str] = []

    def tensorflow(schedule: Schedule) -> Any:
        if stateful and (not fixed or set(schedule.chunks) == {fixed}):
            return StatefulKeras(keras_model, plan)
        return TwinStream(twin, batch)

    runs: dict[Schedule, tuple[Run, Rounding | None]] = {}
    try:
        with on_device(tf_device):
            for schedule in plan_of_runs:
                say(f"stream, {schedule.name}: tensorflow chunk by chunk")
                resets = schedule.resets(batch)
                reference = tensorflow(schedule)
                expected = run_schedule(reference, inputs, schedule.chunks, resets)
                precise = exact.run(
                    lambda s=schedule, r=resets: run_schedule(
                        TwinStream(twin, batch, model=exact_model, dtype=np.float64),
                        inputs,
                        s.chunks,
                        r,
                    )
                )
                single = expected
                if precise is not None and not isinstance(reference, TwinStream):
                    twin32 = TwinStream(twin, batch)
                    single = run_schedule(twin32, inputs, schedule.chunks, resets)
                runs[schedule] = (expected, None if precise is None else (single, precise))
    finally:
        if stateful:
            stateful.set_states(found)
    if exact.reason:
        runs = {schedule: (expected, None) for schedule, (expected, _) in runs.items()}
    if fixed and stateful:
        notes.append(
            f"model {keras_model.name!r} takes chunks of {fixed} steps only: other chunkings "
            "are held to its stateless twin"
        )
    checks: list[Check] = []
    curves: list[StepErrors] = []
    onnx: dict[Schedule, Run] = {}
    try:
        for schedule, (expected, rounding) in runs.items():
            say(f"stream, {schedule.name}: onnxruntime chunk by chunk")
            resets = schedule.resets(batch)
            onnx[schedule] = run_schedule(
                open_stream(bundle, batch), inputs, schedule.chunks, resets
            )
            checks_, curves_ = compare_run(
                schedule, expected, onnx[schedule], rounding, policy, per
            )
            checks += checks_
            curves += curves_
    except RunError as exc:
        return StreamVerification(
            (*checks, failed_check("stream: onnxruntime failed", "run", str(exc))),
            tuple(curves),
            tuple(notes),
            exact.reason,
        )
    floors = _floors(next(iter(runs.values()))[1])
    valid = valid_steps(inputs, mask)
    sides: dict[str, tuple[Callable[[Schedule], Any], dict[Schedule, Run]]] = {
        "tensorflow": (tensorflow, {s: expected for s, (expected, _) in runs.items()}),
        "onnxruntime": (lambda _: open_stream(bundle, batch), onnx),
    }
    for runtime, (make, done) in sides.items():
        say(f"stream: {runtime} chunked against one call")
        with on_device(tf_device):
            checks_, notes_ = _invariance(runtime, make, done, inputs, valid, floors, per)
        checks += checks_
        notes += notes_
    if plan.source == "streaming":
        say("stream: onnxruntime chunked against one call of the model")
        random = next(s for s in onnx if s.name == "random chunks")
        checks += _against_one_call(
            keras_model, tf_device, random, onnx[random], inputs, valid, policy, per
        )
    return StreamVerification(tuple(checks), tuple(curves), tuple(notes), exact.reason)


def compare_run(
    schedule: Schedule,
    expected: Run,
    actual: Run,
    rounding: Rounding | None,
    policy: TolerancePolicy,
    per: Mapping[str, str],
) -> tuple[list[Check], list[StepErrors]]:
    """Every output of one schedule, chunk by chunk, and the final states.

    Args:
        schedule: the chunks both runs were fed.
        expected: TensorFlow's run (float32).
        actual: ONNX Runtime's run.
        rounding: the stateless twin's runs in float32 and float64, whose
            difference is the noise floor; None where float64 did not run.
        policy: the rule and tolerances.
        per: each output's kind, "step" or "chunk".

    Returns:
        One check per output (the worst chunk, failing at the first chunk
        that fails) and one for the states; the error per chunk of each output.
    """
    checks, curves = [], []
    for name in expected[0]:
        label = f"stream {schedule.name}/{name}"
        pieces = [_pieces(run[0][name], per[name], schedule.chunks) for run in (expected, actual)]
        floors = None
        if rounding is not None:
            single, precise = (_pieces(r[0][name], per[name], schedule.chunks) for r in rounding)
            floors = np.maximum.accumulate(
                [noise_of(a, b, a)[0] for a, b in zip(single, precise, strict=True)]
            )
        check, curve = per_chunk(label, name, *pieces, floors, policy)
        checks.append(check)
        curves.append(curve)
    want, got = (_states(run) for run in (expected, actual))
    floor = None if rounding is None else noise_of(*map(_states, rounding), _states(rounding[0]))[0]
    checks.append(_noise_check(f"stream {schedule.name}/final states", "states", want, got,
                               floor, policy))  # fmt: skip
    return checks, curves


def per_chunk(
    label: str,
    output: str,
    expected: Sequence[np.ndarray],
    actual: Sequence[np.ndarray],
    floors: Sequence[float] | None,
    policy: TolerancePolicy,
) -> tuple[Check, StepErrors]:
    """One output of a run, each chunk judged on its own.

    Args:
        label: the check's name.
        output: the output's name (its tolerance overrides apply).
        expected: TensorFlow's output, one array per chunk.
        actual: ONNX Runtime's, likewise.
        floors: the noise floor of each chunk (the largest float32 noise of
            the chunks up to it: an error carried in the states compounds);
            None: the allclose rule.
        policy: the rule and tolerances.

    Returns:
        The worst chunk's check (the first failing one's where one fails),
        named ``label``, and the error of every chunk.
    """
    noise = floors is not None and policy.uses_noise(output)
    checks = [
        _noise_check(f"{label} chunk {index}", output, want, got,
                     floors[index] if noise else None, policy)
        for index, (want, got) in enumerate(zip(expected, actual, strict=True))
    ]  # fmt: skip
    first = next((i for i, check in enumerate(checks) if not check.passed), None)
    worst = checks[first] if first is not None else max(checks, key=lambda c: c.ratio or 0.0)
    detail = ""
    if first is not None:
        detail = f"chunk {first} of {len(checks)}: {describe_failure(worst)}"
    summary = dataclasses.replace(
        worst, name=label, detail=detail, max_abs=max(check.max_abs for check in checks)
    )
    curve = StepErrors(
        name=f"{label} per chunk",
        atol=worst.atol,
        rtol=worst.rtol,
        max_abs_per_step=tuple(check.max_abs for check in checks),
        first_failing_step=first,
        rule="noise" if noise else "allclose",
        noise_per_step=tuple(float(f) for f in floors) if noise else (),
        error_per_step=tuple(check.error for check in checks),
        allowed_per_step=tuple(check.atol for check in checks) if noise else (),
    )
    return summary, curve


def valid_steps(inputs: Mapping[str, np.ndarray], mask: MaskSpec | None) -> np.ndarray | None:
    """``(batch, steps)``: True where a step is not masked; None without a mask.

    Args:
        inputs: the whole sequences.
        mask: the bundle's mask.
    """
    if mask is None:
        return None
    value = inputs[mask.input]
    return np.any(value != mask.value, axis=tuple(range(2, value.ndim)))


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
                           policy.for_output("states"), output="states")
        )  # fmt: skip
    return checks


def _batch_and_steps(model: Any, plan: Any, options: VerifyOptions) -> tuple[int, int | None]:
    """The batch a stream is verified at (the model's fixed batch, else the
    largest asked for) and the model's fixed number of steps, if any."""
    from parity.exporter.keras_graph import model_inputs

    shapes = [tuple(tensor.shape) for tensor in model_inputs(model)]
    batches = {shape[0] for shape in shapes} - {None}
    times = {shape[1] for shape in shapes} - {None}
    batch = plan.keras_batch or (batches.pop() if batches else max(options.batches))
    return int(batch), int(times.pop()) if len(times) == 1 else None


def _pieces(value: np.ndarray, per: str, chunks: Sequence[int]) -> list[np.ndarray]:
    """One array per chunk: a per-chunk output is stacked over chunks, a
    per-step one is cut along its time axis."""
    if per == "chunk":
        return list(value)
    ends = np.cumsum(chunks)
    return [value[:, end - length : end] for end, length in zip(ends, chunks, strict=True)]


def _floors(rounding: Rounding | None) -> dict[str, float] | None:
    """The float32 noise floor of each output and of the states over a whole
    run; None where float64 did not run."""
    if rounding is None:
        return None
    single, precise = rounding
    floors = {name: noise_of(v, precise[0][name], v)[0] for name, v in single[0].items()}
    floors["states"] = noise_of(_states(single), _states(precise), _states(single))[0]
    return floors


def _states(run: Run) -> np.ndarray:
    """Every final state of a run side by side, (batch, all sizes)."""
    return np.concatenate(list(run[1].values()), axis=1)


def _noise_check(
    name: str,
    output: str,
    expected: np.ndarray,
    actual: np.ndarray,
    floor: float | None,
    policy: TolerancePolicy,
) -> Check:
    """``actual`` held to TensorFlow's ``expected`` within the policy's noise
    factor times ``floor`` (the twin's float32 noise, which Keras' stateful
    model itself cannot inflate), or by the allclose rule when ``floor`` is
    None or the output's tolerance is fixed."""
    base = policy.for_output(output)
    if floor is None or not policy.uses_noise(output):
        return compare_arrays(name, KIND, expected, actual, base, output=output)
    check = compare_arrays(
        name, KIND, expected, actual, base, exact=np.asarray(expected, np.float64),
        factor=policy.noise_factor, noise_floor=float(floor), output=output,
    )  # fmt: skip
    if check.passed or check.detail:
        return check
    return dataclasses.replace(
        check,
        detail=f"differs from TensorFlow's by {check.error:.2e}, {check.ratio:.2g} times the "
        f"float32 noise floor {check.noise_floor:.2e} (allowed: {check.limit:g} times); worst "
        f"element {check.worst_index}: expected {check.worst_expected!r}, got "
        f"{check.worst_actual!r}",
    )


def _same(label: str, output: str, reference: np.ndarray, other: np.ndarray, floors: Any) -> Check:
    """``other`` held to ``reference`` within the float32 noise floor once
    (:data:`PAIR_FACTOR`), or :data:`PAIR_FALLBACK` without a floor."""
    if floors is None:
        return compare_arrays(label, INVARIANCE, reference, other, PAIR_FALLBACK, output=output)
    return compare_arrays(
        label, INVARIANCE, reference, other, PAIR_FALLBACK, exact=reference.astype(np.float64),
        factor=PAIR_FACTOR, noise_floor=floors[output], output=output,
    )  # fmt: skip


def _invariance(
    runtime: str,
    make: Callable[[Schedule], Any],
    runs: Mapping[Schedule, Run],
    inputs: Mapping[str, np.ndarray],
    valid: np.ndarray | None,
    floors: dict[str, float] | None,
    per: Mapping[str, str],
) -> tuple[list[Check], list[str]]:
    """In one runtime alone: each chunking against one call over the whole
    sequence, and the rows reset half way against a fresh stream."""
    schedules_ = list(runs)
    whole = runs[schedules_[0]]
    checks, masked = [], 0.0
    for schedule in schedules_[1:]:
        if schedule.reset_rows:
            checks += _reset_rows(runtime, make, schedule, runs[schedule], inputs, floors, per)
            continue
        outputs, states = runs[schedule]
        label = f"{runtime}: stream {schedule.name} against one call"
        for name, value in outputs.items():
            if per[name] == "step":
                keep = slice(None) if valid is None else valid
                checks.append(_same(f"{label}/{name}", name, whole[0][name][keep], value[keep],
                                    floors))  # fmt: skip
                if valid is not None and (~valid).any():
                    gap = np.abs(whole[0][name][~valid].astype(np.float64) - value[~valid])
                    masked = max(masked, float(gap.max()))
            elif schedule.name == "random chunks":
                reference, got = _prefix_calls(make, schedule, name, value, inputs, valid)
                each = f"{runtime}: stream {schedule.name}, each against one call up to its end"
                checks.append(_same(f"{each}/{name}", name, reference, got, floors))
        names = list(states)
        stacked = [np.concatenate([run[n] for n in names], axis=1) for run in (whole[1], states)]
        checks.append(_same(f"{label}/final states", "states", *stacked, floors))
    notes = []
    if masked:
        notes.append(
            f"{runtime}: at masked steps, the chunked outputs differ from one call's by up to "
            f"{masked:.2g} (Keras restarts its repetition of the last valid output at every "
            "call, so outputs at masked steps depend on the chunking; valid steps and states "
            "do not)"
        )
    return checks, notes


def _prefix_calls(
    make: Callable[[Schedule], Any],
    schedule: Schedule,
    name: str,
    chunked: np.ndarray,
    inputs: Mapping[str, np.ndarray],
    valid: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """A per-chunk output of a chunked run, and one call over the steps up to
    each chunk's end, for the rows with a valid step in the chunk."""
    references, values = [], []
    end = 0
    for index, length in enumerate(schedule.chunks):
        end += length
        prefix = {key: value[:, :end] for key, value in inputs.items()}
        one = Schedule("one call", (end,))
        reference = run_schedule(make(one), prefix, one.chunks)[0][name][0]
        rows = slice(None) if valid is None else valid[:, end - length : end].any(axis=1)
        references.append(reference[rows])
        values.append(chunked[index][rows])
    return np.concatenate(references), np.concatenate(values)


def _reset_rows(
    runtime: str,
    make: Callable[[Schedule], Any],
    schedule: Schedule,
    run: Run,
    inputs: Mapping[str, np.ndarray],
    floors: dict[str, float] | None,
    per: Mapping[str, str],
) -> list[Check]:
    """The rows reset before the middle chunk against a fresh stream fed the
    rest of their sequences in the same chunks."""
    middle = len(schedule.chunks) // 2
    cut = sum(schedule.chunks[:middle])
    rest = Schedule("fresh", schedule.chunks[middle:])
    fresh = run_schedule(make(rest), {k: v[:, cut:] for k, v in inputs.items()}, rest.chunks)
    rows = list(schedule.reset_rows)
    label = f"{runtime}: stream rows reset against a fresh stream"
    checks = []
    for name, value in run[0].items():
        if per[name] == "chunk":
            mine, theirs = value[middle:, rows], fresh[0][name][:, rows]
        else:
            mine, theirs = value[rows, cut:], fresh[0][name][rows]
        checks.append(_same(f"{label}/{name}", name, theirs, mine, floors))
    names = list(run[1])
    stacked = [np.concatenate([r[n][rows] for n in names], axis=1) for r in (fresh[1], run[1])]
    checks.append(_same(f"{label}/final states", "states", *stacked, floors))
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
