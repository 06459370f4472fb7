"""``verify.check``: every check of one bundle, with or without its Keras model.

Without the Keras model, the bundle's golden data (TensorFlow's outputs stored
at export time) is checked with ONNX Runtime alone and TensorFlow is never
imported. With it, both runtimes run side by side on fresh inputs drawn from
the manifest: several batch sizes and, where time is dynamic, several lengths;
masked models get the padding checks of :mod:`verify.masking`, seq2seq models
the generation checks of :mod:`verify.seq2seq`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from parity.runtime import load_bundle
from parity.runtime.bundle import Bundle
from parity.runtime.bundle_format.golden import (
    GENERATION,
    START,
    golden_draws,
    input_key,
    output_key,
    read_golden,
)
from parity.runtime.bundle_format.manifest import GraphSpec, MaskSpec
from parity.runtime.errors import ParameterError, ParityError, RunError
from parity.runtime.inputs import check_array, check_feeds, check_prefix_mask
from parity.runtime.sampling import check_draw, sample_inputs
from parity.runtime.versions import tool_versions
from parity.verify.compare import Check, compare_arrays, compare_outputs, failed_check
from parity.verify.generation import compare_generation
from parity.verify.masking import (
    MaskedBatch,
    padded_step_convention,
    padding_variants,
    steps_equal_to_mask,
    tied_inputs,
    time_axis_outputs,
    valid_steps,
)
from parity.verify.options import VerifyOptions
from parity.verify.report import Finding, Report, StepErrors, describe_failure
from parity.verify.runners import (
    KerasRunner,
    OnnxRuntimeRunner,
    TensorFlowDevice,
    select_device,
)
from parity.verify.stored import (
    Float64Twin,
    GraphDraw,
    TensorFlowRun,
    generation_paths,
    replay,
)
from parity.verify.tolerance import TF32, TolerancePolicy, for_precision

# The array of a dataset check's failures file that holds each row's index in
# the dataset; ``--inputs`` takes such a file as it is.
DATASET_ROW = "dataset_row"
Progress = Callable[[str], None]


def check(
    bundle: str | Path,
    model: str | Path | Any | None = None,
    options: VerifyOptions | None = None,
    *,
    inputs: Mapping[str, np.ndarray] | None = None,
    progress: Progress | None = None,
) -> Report:
    """Verify a bundle: against TensorFlow when given its Keras model, else
    against the bundle's golden data only (TensorFlow is then never imported).

    Args:
        bundle: the bundle's folder.
        model: the Keras model the bundle was exported from: a path (which
            must be the file the bundle records by sha256) or a loaded Keras
            model; None checks the golden data alone.
        options: how both runtimes run and are judged; the defaults of
            :class:`VerifyOptions` when None.
        inputs: arrays to run both runtimes on, by input name, in place of the
            random draws; only with ``model``.
        progress: called with a short line as each stage starts.

    Returns:
        The report of every check; a numerical disagreement is a failed check
        in it, never an exception.

    Raises:
        ParityError: a bundle or model that cannot be loaded, a model that is
            not the bundle's, a bundle without golden data, or a bad
            parameter (:class:`ParameterError`).
    """
    options = options or VerifyOptions()
    policy, device, tf32, steps = options.policy, options.device, options.tf32, options.steps
    say = progress or (lambda message: None)
    loaded = load_bundle(bundle, device=device, tf32=tf32)
    manifest = loaded.manifest
    policy = for_precision(policy, tf32 and loaded.device == "gpu")
    options = dataclasses.replace(options, policy=policy)
    # every refusal comes before either runtime runs
    if manifest.kind != "seq2seq":
        if steps is not None:
            raise ParameterError("steps", "applies to seq2seq bundles only (a horizon)")
        if policy.growth is not None:
            raise ParameterError("growth", "applies to seq2seq bundles only (generations)")
    policy.check_outputs(spec.name for graph in manifest.graphs.values() for spec in graph.outputs)
    if options.localise and model is None:
        raise ParameterError("localise", "needs the Keras model: its layers are what is named")
    if inputs is not None and manifest.streaming is not None:
        raise ParameterError("inputs", "a stream bundle is verified on sequences fed in chunks")
    if model is not None and inputs is None:
        for graph in manifest.graphs.values():
            for batch in options.batches:
                for time in options.times:
                    check_draw(graph.inputs, batch, time)
    if inputs is not None:
        if model is None:
            raise ParameterError(
                "inputs", "needs the Keras model: without it there is nothing to compare"
            )
        inputs = checked_user_inputs(loaded, inputs)
    checks: list[Check] = []
    notes: list[str] = []
    curves: list[StepErrors] = []
    findings: list[Finding] = []
    if policy.default is TF32:
        notes.append(
            f"TF32 ran on the GPU: the allclose rule's tolerances are TF32's (atol {TF32.atol:g}, "
            f"rtol {TF32.rtol:g}), not float32's; --atol/--rtol choose others"
        )

    say("golden data")
    golden_checks, golden_curves = _guarded("golden data", lambda: check_golden(loaded, policy))
    checks += golden_checks
    curves += golden_curves
    tensorflow_label = None
    model_label = None
    float64 = ""
    if model is not None:
        keras_model, model_label = load_source_model(model, manifest, options)
        tf_device = select_device(device, tf32)
        tensorflow_label = tf_device.label
    if model is not None and manifest.streaming is not None:
        from parity.verify.stream import check_stream

        streamed = check_stream(loaded, keras_model, options, tf_device, say)
        checks += streamed.checks
        curves += streamed.curves
        notes += streamed.notes
        float64 = streamed.float64
    elif model is not None:
        run = tensorflow_run(loaded, keras_model, tf_device, options, inputs=inputs, progress=say)
        float64 = run.float64
        say("onnxruntime against tensorflow")
        checks_, curves_ = _guarded("outputs", lambda: replay(loaded, run, policy))
        checks += checks_
        curves += curves_
        if manifest.mask is not None and manifest.kind != "seq2seq" and inputs is None:
            checks_, notes_, findings_ = _guarded(
                "masked",
                lambda: _masked_checks(loaded, keras_model, policy, tf_device, options.seed, say),
            )
            checks += checks_
            notes += notes_
            findings += findings_
        if manifest.mask is not None and inputs is not None and manifest.kind != "seq2seq":
            notes += steps_equal_to_mask(inputs, manifest.mask)
    if loaded.device == "gpu":
        say("onnxruntime CPU against GPU")
        checks += _guarded("cpu vs gpu", lambda: (check_cpu_against_gpu(loaded, policy), []))[0]
    localisation = None
    failed = not all(check.passed for check in checks)
    if model is not None and (options.localise or (options.localise is None and failed)):
        from parity.verify.localise import localise

        say("localisation: the first layer that leaves its noise rule")
        localisation = localise(loaded, keras_model, options, inputs=inputs, device=tf_device)
    return Report(
        bundle=str(bundle),
        model=model_label,
        device={
            "requested": device,
            "onnxruntime": sorted({p for ps in loaded.providers.values() for p in ps}),
            "tensorflow": tensorflow_label,
            "precision": "tf32" if tf32 and loaded.device == "gpu" else "fp32",
        },
        versions=tool_versions(tensorflow=model is not None),
        checks=tuple(checks),
        notes=tuple(notes),
        generations=tuple(curves),
        float64=float64,
        findings=(*findings, *constant_output_findings(checks)),
        localisation=localisation,
    )


def tensorflow_run(
    bundle: Bundle,
    keras_model: Any,
    tf_device: TensorFlowDevice,
    options: VerifyOptions | None = None,
    *,
    inputs: Mapping[str, np.ndarray] | None = None,
    progress: Progress | None = None,
) -> TensorFlowRun:
    """TensorFlow's side of a verification, in float32 and (where the model
    can be rebuilt so) float64: every draw of every graph and, for seq2seq,
    whole generations. :func:`parity.verify.stored.replay` holds a bundle to it
    with ONNX Runtime alone, as often as needed.

    Args:
        bundle: the loaded bundle (its manifest says what to draw).
        keras_model: the trained Keras model the bundle was exported from.
        tf_device: where TensorFlow runs (:func:`parity.verify.runners.select_device`).
        options: the draws' batch sizes, time lengths and seed, and a
            seq2seq generation's horizon (:class:`VerifyOptions`).
        inputs: the caller's arrays, checked by :func:`checked_user_inputs`, in
            place of the random draws.
        progress: called with a short line as each stage starts.
    """
    options = options or VerifyOptions()
    batches, times, seed = options.batches, options.times, options.seed
    say = progress or (lambda message: None)
    manifest = bundle.manifest
    if manifest.kind == "seq2seq":
        from parity.verify.seq2seq_run import seq2seq_run

        horizon = options.steps or manifest.seq2seq.steps
        return seq2seq_run(bundle, keras_model, batches, horizon, tf_device, seed, say, inputs)
    from parity.verify.noise import float64_model

    exact_model, reason = float64_model(keras_model)
    graph = manifest.graph("model")
    mask = manifest.mask
    plan: list[tuple[str, dict[str, np.ndarray]]] = []
    if inputs is not None:
        plan.append(("on your inputs", dict(inputs)))
    else:
        dynamic_time = _has_dynamic_time(graph)
        sizes = [(b, t) for b in batches for t in (times if dynamic_time else (None,))]
        for index, (batch, time) in enumerate(sizes):
            label = f"batch={batch}" + (f" time={time}" if time else "")
            sample = sample_inputs(graph.inputs, batch, time=time, seed=seed + index, mask=mask)
            plan.append((label, sample.inputs))
        if mask is not None:
            padded = _masked_batch(graph, mask, seed, dynamic_time)
            empty = dict(padded.inputs)
            empty[mask.input] = padded.inputs[mask.input].copy()
            empty[mask.input][0] = mask.value
            plan.append(("with an all-padding row", empty))
    draws = []
    twin = Float64Twin(reason)
    for label, feeds in plan:
        say(f"tensorflow: outputs {label}")
        expected = KerasRunner(keras_model, tf_device).run(feeds)
        exact = twin.run(lambda feeds=feeds: KerasRunner(exact_model, tf_device).run(feeds))
        draws.append(GraphDraw("model", "output", label, feeds, expected, exact))
    return twin.finish(TensorFlowRun(tuple(draws), ()))


def checked_user_inputs(bundle: Bundle, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The caller's arrays, checked against the bundle before either runtime runs.

    A single-graph bundle takes one array per input of its graph; a seq2seq
    bundle one per encoder input and, optionally, the decoder input (named as
    the step graph's input: its first step starts the generation). Every array
    must be named after an input and fit it (dtype, rank, fixed sizes, finite
    values, token ids inside the vocabulary; a fused masked graph needs
    post-padding).

    Args:
        bundle: the loaded bundle.
        inputs: the caller's arrays, by input name.

    Raises:
        ParameterError: an array named after no input, or a missing one.
        InputError: an array that does not fit its input.
    """
    manifest = bundle.manifest
    spec = manifest.seq2seq
    graph = manifest.graph("encoder" if spec is not None else "model")
    required = [s.name for s in graph.inputs]
    optional = [spec.step_input] if spec is not None else []
    optional.append(DATASET_ROW)  # a dataset check's failures file: the rows' indices
    for name in required:
        _user_input(inputs, name)
    unknown = sorted(set(inputs) - set(required) - set(optional))
    if unknown:
        raise ParameterError(
            "inputs",
            f"array {unknown[0]!r} is named after no input of the bundle "
            f"(inputs: {', '.join(required + optional)})",
        )
    checked = check_feeds(graph, {name: inputs[name] for name in required})
    if spec is None and manifest.mask is not None and manifest.mask.fused:
        check_prefix_mask(checked[manifest.mask.input], manifest.mask)
    if spec is not None and spec.step_input in inputs:
        step = manifest.graph("step").input(spec.step_input)
        decoder = np.asarray(inputs[spec.step_input])
        first = check_array(step, decoder[:, :1] if decoder.ndim >= 2 else decoder)
        batch = next(iter(checked.values())).shape[0]
        if first.shape[0] != batch:
            raise ParameterError(
                "inputs",
                f"decoder input {spec.step_input!r} has batch {first.shape[0]}, "
                f"the encoder's {batch}",
            )
        check_array(dataclasses.replace(step, shape=(*step.shape[:1], "time", *step.shape[2:])),
                    decoder)  # fmt: skip
        checked[spec.step_input] = decoder.astype(step.dtype)
    return checked


def _guarded(stage: str, run: Callable[[], tuple[list, ...]]) -> tuple[list, ...]:
    """Run one stage of checks (its checks first, then other lists); ONNX
    Runtime failing on valid inputs is a failed check (the graph is broken),
    not an error of the caller's."""
    try:
        return run()
    except RunError as exc:
        return [failed_check(f"{stage}: onnxruntime failed", "run", str(exc))], [], []


# The kinds of checks that hold ONNX Runtime to TensorFlow on drawn inputs.
_DRAWN_KINDS = ("output", "encoder", "step", "generation", "stream")


def constant_output_findings(checks: Sequence[Check]) -> list[Finding]:
    """A finding for each output whose reference was the same for every
    drawn row in every check of it: such checks pass on any graph that
    gets that one value right, and prove little.

    Args:
        checks: every check of the report.
    """
    varied: dict[str, bool] = {}
    for check in checks:
        if check.kind in _DRAWN_KINDS and check.output and check.varied is not None:
            varied[check.output] = varied.get(check.output, False) or check.varied
    return [
        Finding(
            "constant_output",
            f"output {name!r} was the same for every drawn row: its checks pass on any graph "
            "that computes that one value, so they prove little. The drawn inputs may not "
            "reach the model (token ids out of their range, a fully masked input); give "
            "inputs that exercise it with --inputs",
        )
        for name, changed in varied.items()
        if not changed
    ]


def check_golden(bundle: Bundle, policy: TolerancePolicy) -> tuple[list[Check], list[StepErrors]]:
    """Every graph, and the whole generation, against TensorFlow's stored outputs.

    Args:
        bundle: the loaded bundle, whose golden data holds the inputs and outputs.
        policy: the tolerances.

    Raises:
        ParityError: the bundle holds no golden data.
    """
    golden = read_golden(bundle)
    checks: list[Check] = []
    for draw, key in golden_draws(golden, bundle.manifest.graphs):
        graph = bundle.manifest.graph(key)
        feeds = {spec.name: golden[input_key(draw, spec.name)] for spec in graph.inputs}
        stored = {
            spec.name: golden[output_key(draw, spec.name)]
            for spec in graph.outputs
            if output_key(draw, spec.name) in golden
        }
        checks += compare_outputs(
            stored,
            OnnxRuntimeRunner(bundle, key).run(feeds),
            list(stored),
            policy,
            kind="golden",
            check_name=lambda output, draw=draw: f"golden {draw}/{output}",
        )
    curves: list[StepErrors] = []
    spec = bundle.manifest.seq2seq
    if spec is not None and input_key(GENERATION, START) in golden:
        from parity.runtime import generate

        expected = golden[output_key(GENERATION, spec.step_output)]
        encoder_inputs = {
            name: golden[input_key(GENERATION, name)]
            for name in (s.name for s in bundle.manifest.graph("encoder").inputs)
        }
        for path in generation_paths(bundle):
            actual = generate(
                bundle,
                encoder_inputs,
                start=golden[input_key(GENERATION, START)],
                steps=expected.shape[1],
                use_loop_graph=path == "loop graph",
            )
            check, curve = compare_generation(
                f"golden generation/{spec.step_output} ({path}) steps={expected.shape[1]}",
                spec.step_output,
                expected,
                actual,
                policy,
            )
            checks.append(check)
            curves.append(curve)
    if bundle.manifest.streaming is not None:
        from parity.verify.stream import check_stream_golden

        checks += check_stream_golden(bundle, golden, policy)
    if not checks:
        raise ParityError(f"{bundle.path}: the bundle holds no golden data to check against")
    return checks, curves


def check_cpu_against_gpu(bundle: Bundle, policy: TolerancePolicy) -> list[Check]:
    """ONNX Runtime on the CPU against ONNX Runtime on the GPU, on the golden inputs.

    Args:
        bundle: the bundle loaded on the GPU; its CPU twin is loaded here.
        policy: the tolerances.
    """
    cpu = load_bundle(bundle.path, device="cpu")
    golden = read_golden(bundle)
    checks = []
    for draw, key in golden_draws(golden, bundle.manifest.graphs):
        graph = bundle.manifest.graph(key)
        feeds = {spec.name: golden[input_key(draw, spec.name)] for spec in graph.inputs}
        checks += compare_outputs(
            OnnxRuntimeRunner(cpu, key).run(feeds),
            OnnxRuntimeRunner(bundle, key).run(feeds),
            [spec.name for spec in graph.outputs],
            policy,
            kind="cross-device",
            check_name=lambda output, draw=draw: f"onnxruntime cpu vs gpu {draw}/{output}",
        )
    return checks


def _masked_batch(graph: GraphSpec, mask: MaskSpec, seed: int, dynamic_time: bool) -> MaskedBatch:
    """A padded batch with lengths 1..full and, where the model allows it, a
    row that is all padding."""
    time = 12 if dynamic_time else None
    sample = sample_inputs(graph.inputs, 6, time=time, seed=seed + 1000, mask=mask)
    return MaskedBatch(dict(sample.inputs), np.asarray(sample.lengths))


def _masked_checks(
    bundle: Bundle,
    keras_model: Any,
    policy: TolerancePolicy,
    tf_device: TensorFlowDevice,
    seed: int,
    say: Progress,
) -> tuple[list[Check], list[str], list[Finding]]:
    """Both runtimes on the same rows padded other ways, held to each other
    (checks); what padding changes in each runtime alone, and whether a
    returned state is the last valid step of its sequence (findings about
    the model); each runtime's convention at padded steps (notes)."""
    graph = bundle.manifest.graph("model")
    mask = bundle.manifest.mask
    dynamic_time = _has_dynamic_time(graph)
    batch = _masked_batch(graph, mask, seed, dynamic_time)
    sequences = time_axis_outputs(graph, mask)
    names = [spec.name for spec in graph.outputs]
    runners = {"tensorflow": KerasRunner(keras_model, tf_device),
               "onnxruntime": OnnxRuntimeRunner(bundle, "model")}  # fmt: skip
    say("masked: both runtimes on the same rows padded other ways")
    reference = {name: runner.run(batch.inputs) for name, runner in runners.items()}
    checks: list[Check] = []
    changed: dict[str, list[Check]] = {name: [] for name in runners}
    variants = padding_variants(batch, graph, mask, dynamic_time=dynamic_time, pre_padding=True)
    for variant in variants:
        # a fused graph counts valid steps from the start, so it refuses pre-padding
        refused = variant.label == "pre-padded" and mask.fused
        taking = {n: r for n, r in runners.items() if not (refused and n == "onnxruntime")}
        outputs = {name: runner.run(variant.inputs) for name, runner in taking.items()}
        if len(outputs) == 2:
            checks += compare_outputs(
                outputs["tensorflow"],
                outputs["onnxruntime"],
                names,
                policy,
                kind="padding",
                check_name=lambda output, v=variant: f"{output} {v.label}",
            )
        for runtime, values in outputs.items():
            for name in names:
                same = compare_arrays(
                    f"{runtime}: {name} {variant.label} against the padded batch",
                    "padding",
                    valid_steps(
                        reference[runtime], name, variant, batch.lengths, sequences, in_batch=True
                    ),
                    valid_steps(values, name, variant, batch.lengths, sequences),
                    policy.for_output(name),
                    output=name,
                )
                if not same.passed:
                    changed[runtime].append(same)
    notes, findings = [], []
    if mask.fused:
        notes.append(
            "the exported graph uses the fused ONNX recurrent op with sequence lengths: "
            "it requires post-padding (pre-padded inputs are not equivalent there)"
        )
    tied = sorted(tied_inputs(graph, mask) - {mask.input})
    if tied:
        notes.append(
            f"inputs {', '.join(map(repr, tied))} share the masked input's time axis and were "
            "cut and padded with it; what padding changes is not judged"
        )
    elif any(changed.values()):
        findings.append(_padding_finding(changed))
    for runtime, values in reference.items():
        findings += _state_findings(runtime, values, batch, sequences, mask, policy)
    for name in sorted(sequences):
        keras_rule = padded_step_convention(reference["tensorflow"][name], batch.lengths)
        onnx_rule = padded_step_convention(reference["onnxruntime"][name], batch.lengths)
        notes.append(
            f"output {name!r} at padded steps: Keras gives '{keras_rule}', "
            f"ONNX Runtime gives '{onnx_rule}'"
            + ("" if keras_rule == onnx_rule else " - they DIFFER at padded steps")
        )
    return checks, notes, findings


def _padding_finding(changed: Mapping[str, list[Check]]) -> Finding:
    """What padding changes, in words: in both runtimes alike it is the
    model's doing; in one runtime alone the gate's checks fail as well."""
    where = [name for name, checks in changed.items() if checks]
    first = changed[where[0]][0]
    if len(where) == 2:
        summary = (
            "padding changes this model's output, in TensorFlow and in ONNX Runtime alike, so "
            "it is the model's doing, not the conversion's: some layer sees the padded steps "
            "(one that does not take the mask, such as a Conv1D, Flatten or Dense on the raw "
            "input beside the masked branch). Pad as the model was trained, or mask that branch"
        )
    else:
        summary = f"padding changes the output in {where[0]} only (the checks above fail too)"
    return Finding("padding", summary, f"{first.name}: {describe_failure(first)}")


def _state_findings(
    runtime: str,
    outputs: Mapping[str, np.ndarray],
    batch: MaskedBatch,
    sequences: set[str],
    mask: MaskSpec,
    policy: TolerancePolicy,
) -> list[Finding]:
    """The second seed's claim, in one runtime: a recurrent layer that returns
    its sequence and its state ends with h equal to its output at each row's
    last valid step (the exporter names the state ``<layer>_h``)."""
    findings = []
    rows = [r for r, n in enumerate(batch.lengths) if n > 0]
    last = [int(n) - 1 for n in batch.lengths if n > 0]
    for name in sorted(sequences):
        state = outputs.get(f"{name}_h")
        if state is None or not rows:
            continue
        check = compare_arrays(
            f"{runtime}: {name} at the last valid step against {name}_h",
            "padding",
            state[rows],
            outputs[name][rows, last],
            policy.for_output(f"{name}_h"),
        )
        if not check.passed:
            findings.append(
                Finding(
                    "state",
                    f"in {runtime}, output {name!r} at each row's last valid step is not the "
                    f"state {name}_h the layer returns",
                    describe_failure(check),
                )
            )
    return findings


def _has_dynamic_time(graph: GraphSpec) -> bool:
    return any(spec.shape[1:2] == ("time",) for spec in graph.inputs)


def _user_input(inputs: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    if name not in inputs:
        raise ParameterError("inputs", f"no array named {name!r} (has: {', '.join(inputs)})")
    return np.asarray(inputs[name])


def load_source_model(model: Any, manifest: Any, options: VerifyOptions) -> tuple[Any, str]:
    """Load the Keras model (a path or a model in memory) and, for a path, make
    sure the bundle was exported from it: ``(model, label for reports)``.

    The model comes back in the form the exporter walked (a ``Sequential``
    model as a functional model over its own layers), so that everything
    verification builds from it (the float64 rebuild, the seq2seq split) sees
    what the export saw. ``options`` gives ``unsafe`` and ``custom_objects``."""
    from parity.exporter.keras_graph import as_functional

    if not isinstance(model, str | Path):
        return as_functional(model), getattr(model, "name", "keras model")
    from parity.exporter import load_keras
    from parity.exporter.load import model_digest

    path = Path(model)
    keras_model = load_keras(path, unsafe=options.unsafe, custom_objects=options.custom_objects)
    digest = model_digest(path)
    expected = manifest.source.get("sha256")
    if expected and digest != expected:
        raise ParityError(
            f"{path}: this is not the model the bundle was exported from "
            f"(sha256 {digest[:12]}..., bundle records {expected[:12]}...); re-export it"
        )
    return as_functional(keras_model), str(path)
