"""What is timed: every zoo model, TensorFlow and ONNX Runtime side by side.

Models are built untrained (speed does not depend on the weights' values) and
exported into a temporary folder. Each way of running a model is prepared
first, untimed: a ``tf.function`` is traced, a session is created, and that
first call's output is kept to check that every way computes the same thing
(a row whose output differs from ONNX Runtime's says so in its note; the
timing of a wrong computation is no comparison). Then ``warmup`` more calls,
then ``repeats`` timed ones.

Single-graph models (:data:`SINGLE_METHODS`), at batch 1 and a large batch:

- ``keras predict``: ``model.predict(x, verbose=0)``, as users call it; it
  splits a batch into batches of 32, its default;
- ``tf.function``: one call of the model in a ``tf.function``;
- ``tf.function XLA``: the same with ``jit_compile=True`` (:mod:`bench.xla`);
- ``litert``: the model converted to LiteRT for the call's shapes
  (:mod:`bench.litert`), where it converts;
- ``onnxruntime``: ``bundle.run`` on the exported bundle.

A masked model is timed on post-padded rows of 20% to 45% valid steps (the
second seed's data: 20 to 45 valid of 100 steps), where not computing the
padding pays.

Seq2seq models (:data:`SEQ2SEQ_METHODS`), a whole generation over the
preset's horizon from an encoder input of :data:`ENCODER_STEPS` steps:

- ``tf while_loop``: TensorFlow's reference generation, a ``tf.while_loop``
  over the step model (:func:`parity.exporter.keras_generation.reference_generate`);
- ``tf while_loop XLA``: the same loop compiled with XLA (:mod:`bench.xla`);
- ``tf.function step, Python loop``: the encoder, then a Python loop calling
  the step model in a ``tf.function`` once per step;
- ``litert step, Python loop``: the encoder and the step model converted to
  LiteRT, the step model called once per step from Python;
- ``onnxruntime step loop``: :func:`runtime.generate` looping over the step
  graph from Python;
- ``onnxruntime io-binding loop``: the same loop with its tensors kept on the
  session's device (:mod:`bench.iobinding`);
- ``onnxruntime loop graph``: one call of the bundle's generation graph,
  where the bundle has one.

Every way is prepared first; then the ways of one model and batch take
turns in blocks of calls (:func:`bench.timing.measure_interleaved`), so that
a drift of the shared machine, or what one runtime leaves behind, does not
fall on one of them alone. The 150-step unrolled training model is never
called: it takes 90 s to trace. A large batch that would not fit in memory
is reduced (to a power of two) and the row says so. GPU rows run where both a
CUDA session and a TensorFlow GPU exist; otherwise they are listed with the
reason.
"""

from __future__ import annotations

import gc
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from parity.bench.flops import activation_bytes, count_flops, recurrent_gemms
from parity.bench.machine import memory_bytes
from parity.bench.result import CPU, GPU, Row, Settings
from parity.bench.timing import measure_interleaved
from parity.runtime.errors import ParityError, quoted
from parity.runtime.progress import Progress, silent

BATCHES = {"tiny": (1, 32), "seed": (1, 256)}
SEQ2SEQ_BATCHES = {"tiny": (1, 32), "seed": (1, 470)}
ENCODER_STEPS = 200  # clamped into the preset's range of encoder lengths
MEMORY_SHARE = 10  # a batch's layer outputs may take this share of the free memory

KERAS_PREDICT = "keras predict"
TF_FUNCTION = "tf.function"
TF_XLA = "tf.function XLA"
LITERT = "litert"
ORT_RUN = "onnxruntime"
TF_WHILE = "tf while_loop"
TF_WHILE_XLA = "tf while_loop XLA"
TF_STEP_LOOP = "tf.function step, Python loop"
LITERT_STEP_LOOP = "litert step, Python loop"
ORT_STEP_LOOP = "onnxruntime step loop"
ORT_IOBINDING = "onnxruntime io-binding loop"
ORT_LOOP_GRAPH = "onnxruntime loop graph"
SINGLE_METHODS = (KERAS_PREDICT, TF_FUNCTION, TF_XLA, LITERT, ORT_RUN)
SEQ2SEQ_METHODS = (
    TF_WHILE,
    TF_WHILE_XLA,
    TF_STEP_LOOP,
    LITERT_STEP_LOOP,
    ORT_STEP_LOOP,
    ORT_IOBINDING,
    ORT_LOOP_GRAPH,
)
# Valid steps of a masked row, as shares of the time axis: the second seed's
# data has 20 to 45 valid of 100 steps.
MASKED_SHARE = (0.20, 0.45)
LITERT_CPU_ONLY = "LiteRT is timed on the CPU only"

NO_CUDA = "no CUDA device: onnxruntime could not create a CUDA session"
NO_TF_GPU = "no GPU: TensorFlow lists no GPU device"
AGREEMENT = 1e-4  # max abs difference from ONNX Runtime's output that passes unremarked


@dataclass(frozen=True)
class Case:
    """The rows of one model and the GEMM sizes of its gate products."""

    rows: tuple[Row, ...]
    gemms: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class Gpu:
    """Why each runtime cannot use a GPU here (None: it can)."""

    onnxruntime: str | None
    tensorflow: str | None


def gpu_status() -> Gpu:
    import tensorflow as tf

    from parity.runtime.providers import cuda_usable

    return Gpu(
        onnxruntime=None if cuda_usable() else NO_CUDA,
        tensorflow=None if tf.config.list_physical_devices("GPU") else NO_TF_GPU,
    )


def devices(settings: Settings, gpu: Gpu) -> tuple[str, ...]:
    """The devices to time on. ``--device gpu`` with no GPU at all is an error."""
    if settings.device == "gpu" and gpu.onnxruntime and gpu.tensorflow:
        raise ParityError(f"--device gpu: {gpu.onnxruntime}; {gpu.tensorflow}")
    chosen = []
    if settings.device in ("auto", "cpu"):
        chosen.append(CPU)
    if settings.device == "gpu" or (settings.device == "auto" and not _no_gpu(gpu)):
        chosen.append(GPU)
    return tuple(chosen)


def run_case(
    name: str, settings: Settings, folder: Path, gpu: Gpu, progress: Progress = silent
) -> Case:
    """Build, export and time one zoo model on every device asked for.

    Args:
        name: the zoo model.
        settings: what to time, and how often.
        folder: where its bundle is exported.
        gpu: why each runtime cannot use a GPU (:func:`gpu_status`).
        progress: hears one line per batch size and device as its timing starts.
    """
    import keras

    from parity import models
    from parity.exporter.split import is_seq2seq

    entry = models.get(name)
    model = _build(entry, settings.preset, CPU)
    try:
        if is_seq2seq(model):
            return _seq2seq_case(entry, model, settings, folder / name, gpu, progress)
        return _single_case(entry, model, settings, folder / name, gpu, progress)
    finally:
        keras.backend.clear_session()
        gc.collect()


# --- single-graph models ------------------------------------------------------


def _single_case(
    entry: Any, model: Any, settings: Settings, folder: Path, gpu: Gpu, progress: Progress
) -> Case:
    from parity.exporter import export_model

    manifest = export_model(model, folder, source=_source(entry.name))
    (graph,) = manifest.graphs.values()
    time = entry.preset(settings.preset).dims.get("steps")
    batches = settings.batches or BATCHES[settings.preset]
    per_row = activation_bytes(model, time)
    rows, gemms = [], []
    for device in devices(settings, gpu):
        tf_model = model if device == CPU else _build(entry, settings.preset, device, model)
        bundle = _bundle(folder, device, gpu)
        for asked in batches:
            batch, note = _fit(asked, per_row)
            progress(f"timing batch {batch} on the {device.upper()}")
            sample = masked_sample(graph.inputs, batch, time, manifest.mask)
            flops = count_flops(model, batch, time)
            gemms += recurrent_gemms(model, batch)
            timed = _time_single(tf_model, bundle, sample, device, gpu, settings)
            for method, (timing, remark) in timed.items():
                if method == KERAS_PREDICT and batch > 32 and timing:
                    remark = _join(remark, "predict runs batches of 32 (its default)")
                rows.append(
                    Row(entry.name, batch, device, method, timing, flops, _join(note, remark))
                )
        del bundle
    rows += _missing_gpu_rows(entry.name, settings, gpu)
    return Case(tuple(rows), tuple(gemms))


def masked_sample(specs: Any, batch: int, time: int | None, mask: Any) -> dict[str, Any]:
    """Inputs for a graph; with ``mask``, rows of :data:`MASKED_SHARE` valid steps."""
    from parity.runtime.sampling import sample_inputs

    if mask is None:
        return sample_inputs(specs, batch, time=time).inputs
    spec = next(spec for spec in specs if spec.name == mask.input)
    steps = spec.shape[1] if isinstance(spec.shape[1], int) else time
    low, high = (max(1, round(share * steps)) for share in MASKED_SHARE)
    lengths = np.random.default_rng(1).integers(low, high + 1, batch)
    return sample_inputs(specs, batch, time=time, mask=mask, lengths=lengths).inputs


def _time_single(model, bundle, sample, device, gpu, settings) -> dict[str, tuple]:
    """Timing and note of each method, ONNX Runtime prepared first (its output
    is the reference)."""
    import tensorflow as tf

    from parity.bench.litert import litert_call
    from parity.bench.xla import xla_call

    arrays = [sample[tensor.name] for tensor in model.inputs]
    x = arrays[0] if len(arrays) == 1 else arrays
    ways: dict[str, Callable | str] = {}
    ways[ORT_RUN] = gpu.onnxruntime if bundle is None else lambda: _first(bundle.run(sample))
    if device == GPU and gpu.tensorflow:
        ways.update({m: gpu.tensorflow for m in (KERAS_PREDICT, TF_FUNCTION, TF_XLA, LITERT)})
        return _time_ways(ways, SINGLE_METHODS, settings)
    with tf.device(_tf_device(device)):
        tensors = [tf.constant(a) for a in arrays]
        call = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
        ways[KERAS_PREDICT] = lambda: model.predict(x, verbose=0)
        ways[TF_FUNCTION] = lambda: np.asarray(call(*tensors))
        ways[TF_XLA] = lambda: xla_call(model, arrays)
        ways[LITERT] = LITERT_CPU_ONLY if device == GPU else lambda: litert_call(model, arrays)
        return _time_ways(ways, SINGLE_METHODS, settings, builders=(TF_XLA, LITERT))


# --- seq2seq models -----------------------------------------------------------


def _seq2seq_case(
    entry: Any, model: Any, settings: Settings, folder: Path, gpu: Gpu, progress: Progress
) -> Case:
    from parity.exporter import export_model
    from parity.runtime.sampling import sample_inputs

    dims = entry.preset(settings.preset).dims
    steps = int(dims["horizon"])
    encoder_steps = min(max(ENCODER_STEPS, dims["encoder_min_steps"]), dims["encoder_max_steps"])
    manifest = export_model(model, folder, source=_source(entry.name), steps=steps)
    encoder_specs = manifest.graph(manifest.seq2seq.encoder_graph).inputs
    batches = settings.batches or SEQ2SEQ_BATCHES[settings.preset]
    rows, gemms = [], []
    for device in devices(settings, gpu):
        tf_model = model if device == CPU else _build(entry, settings.preset, device, model)
        split = _split(tf_model)
        bundle = _bundle(folder, device, gpu)
        per_row = activation_bytes(split.encoder, encoder_steps)
        for asked in batches:
            batch, note = _fit(asked, per_row)
            progress(f"timing batch {batch} on the {device.upper()}")
            inputs = sample_inputs(encoder_specs, batch, time=encoder_steps).inputs
            flops = count_flops(split.encoder, batch, encoder_steps) + steps * count_flops(
                split.step, batch, 1
            )
            gemms += recurrent_gemms(split.step, batch)
            timed = _time_seq2seq(split, manifest, bundle, inputs, steps, device, gpu, settings)
            for method, (timing, remark) in timed.items():
                rows.append(
                    Row(entry.name, batch, device, method, timing, flops, _join(note, remark))
                )
        del bundle
    rows += _missing_gpu_rows(entry.name, settings, gpu)
    return Case(tuple(rows), tuple(gemms))


def _time_seq2seq(split, manifest, bundle, inputs, steps, device, gpu, settings) -> dict:
    """Timing and note of each method, ONNX Runtime prepared first (its output
    is the reference)."""
    import tensorflow as tf

    from parity.bench.iobinding import iobinding_generate
    from parity.bench.litert import litert_generate
    from parity.bench.xla import xla_generate
    from parity.exporter.keras_generation import reference_generate
    from parity.runtime.generate import start_input

    ways: dict[str, Callable | str] = {}
    if bundle is None:
        ways.update({m: gpu.onnxruntime for m in SEQ2SEQ_METHODS if _is_ort(m)})
    else:
        step_loop, loop_graph, why = _generate_paths(bundle, steps)
        ways[ORT_LOOP_GRAPH] = why if loop_graph is None else lambda: loop_graph(inputs)
        ways[ORT_STEP_LOOP] = why if step_loop is None else lambda: step_loop(inputs)
        if manifest.seq2seq.feedback != "identity":
            ways[ORT_IOBINDING] = f"feedback {manifest.seq2seq.feedback!r} needs the host"
        else:
            ways[ORT_IOBINDING] = lambda: iobinding_generate(bundle, inputs, steps=steps)
    if device == GPU and gpu.tensorflow:
        ways.update({m: gpu.tensorflow for m in SEQ2SEQ_METHODS if not _is_ort(m)})
        return _time_ways(ways, SEQ2SEQ_METHODS, settings)
    start = start_input(manifest, inputs)
    with tf.device(_tf_device(device)):
        ways[TF_WHILE] = lambda: reference_generate(split, inputs, start, steps)
        ways[TF_WHILE_XLA] = lambda: xla_generate(split, inputs, start, steps)
        ways[TF_STEP_LOOP] = lambda: _tf_step_loop(split, inputs, start, steps, device)
        ways[LITERT_STEP_LOOP] = (
            LITERT_CPU_ONLY
            if device == GPU
            else lambda: litert_generate(split, inputs, start, steps)
        )
        builders = (TF_WHILE_XLA, TF_STEP_LOOP, LITERT_STEP_LOOP)
        return _time_ways(ways, SEQ2SEQ_METHODS, settings, builders=builders)


def _generate_paths(bundle: Any, steps: int) -> tuple[Callable | None, Callable | None, str]:
    """``runtime.generate`` forced onto its Python step loop and onto the
    generation graph, each None where it cannot be had, and why."""
    from parity import runtime

    has_graph = bundle.manifest.seq2seq.loop_graph is not None
    can_force = "use_loop_graph" in inspect.signature(runtime.generate).parameters
    if not has_graph:
        step_loop = lambda x: runtime.generate(bundle, x, steps=steps)  # noqa: E731
        return step_loop, None, "the bundle has no generation graph (manifest.seq2seq.loop_graph)"
    loop_graph = lambda x: runtime.generate(bundle, x, steps=steps)  # noqa: E731
    if not can_force:
        why = "runtime.generate takes no use_loop_graph to force its step loop"
        return None, loop_graph, why
    step_loop = lambda x: runtime.generate(bundle, x, steps=steps, use_loop_graph=False)  # noqa: E731
    return step_loop, loop_graph, ""


def _tf_step_loop(split: Any, inputs: dict, start: np.ndarray, steps: int, device: str):
    """A Python loop over the step model in a ``tf.function``; tensors stay
    TensorFlow's between steps and come back as numpy once, at the end."""
    import tensorflow as tf

    from parity.exporter.keras_generation import tensorflow_feedback

    target = _tf_device(device)

    @tf.function
    def encode(x):
        with tf.device(target):
            return split.encoder(x, training=False)

    @tf.function
    def step(values):
        with tf.device(target):
            return split.step(values, training=False)

    encoder_x = tf.constant(inputs[split.encoder_input])
    first = tf.constant(start)
    feed_back = tensorflow_feedback(split)

    def generate() -> np.ndarray:
        encoded = iter(_as_list(encode(encoder_x)))
        batch = first.shape[0]
        states = [
            next(encoded) if spec.init == "encoder" else tf.zeros((batch, spec.size))
            for spec in split.states
        ]
        x, outputs = first, []
        for _ in range(steps):
            output, *states = step([x, *states])
            outputs.append(output)
            x = feed_back(output)
        return tf.concat(outputs, axis=1).numpy()

    return generate


# --- helpers -------------------------------------------------------------------


def _time_ways(
    ways: dict[str, Callable | str],
    order: tuple[str, ...],
    settings: Settings,
    builders: tuple[str, ...] = (),
) -> dict[str, tuple]:
    """Prepare every way, then time them taking turns. A way is a callable,
    or the reason it cannot run; for a method in ``builders`` the callable
    builds the callable to time (a conversion or a compilation that may fail
    with :class:`bench.litert.Unconvertible`). Each way's first call is
    untimed and its output checked against the first prepared way's (ONNX
    Runtime's); a way whose preparation fails is a skipped row that says why.
    Returns method -> (Timing or None, note), in ``order``."""
    from parity.bench.litert import Unconvertible

    notes: dict[str, str] = {}
    ready: dict[str, Callable] = {}
    reference = None
    for method, way in ways.items():
        if isinstance(way, str):
            notes[method] = way
            continue
        try:
            fn = way() if method in builders else way
            output = np.asarray(fn())
        except Unconvertible as exc:
            notes[method] = str(exc)
            continue
        except Exception as exc:  # one way failing (an XLA compilation) is one row's note
            notes[method] = f"failed: {quoted(exc, 160)}"
            continue
        notes[method] = _agreement(output, reference)
        reference = output if reference is None else reference
        ready[method] = fn
    timings = measure_interleaved(ready, settings.warmup, settings.repeats) if ready else {}
    return {m: (timings.get(m), notes[m]) for m in order if m in notes}


def _agreement(output: np.ndarray, reference: np.ndarray | None) -> str:
    if reference is None:
        return ""
    if output.shape != reference.shape:
        return f"output shape {output.shape} differs from onnxruntime's {reference.shape}"
    worst = float(np.max(np.abs(output.astype(np.float64) - reference))) if output.size else 0.0
    return f"output differs from onnxruntime's by {worst:.1e}" if worst > AGREEMENT else ""


def _fit(batch: int, per_row: int) -> tuple[int, str]:
    """``batch``, or the largest power of two whose layer outputs fit in a
    :data:`MEMORY_SHARE` of the available memory, and the note that says so."""
    budget = memory_bytes("MemAvailable") // MEMORY_SHARE
    if not budget or not per_row or batch * per_row <= budget:
        return batch, ""
    fitted = 1 << max(0, (budget // per_row).bit_length() - 1)
    fitted = min(fitted, batch)
    return fitted, f"batch {batch} reduced to {fitted} to fit in memory"


def _build(entry: Any, preset: str, device: str, like: Any = None) -> Any:
    """The model, its variables on ``device``; with the weights of ``like``."""
    import tensorflow as tf

    with tf.device(_tf_device(device)):
        model = entry.build(preset)
        if like is not None:
            model.set_weights(like.get_weights())
    return model


def _split(model: Any) -> Any:
    from parity.exporter.split import split_seq2seq

    return split_seq2seq(model)


def _bundle(folder: Path, device: str, gpu: Gpu) -> Any:
    from parity import runtime

    if device == GPU and gpu.onnxruntime:
        return None
    return runtime.load_bundle(folder, device=device)


def _missing_gpu_rows(name: str, settings: Settings, gpu: Gpu) -> list[Row]:
    """One row per runtime that was not timed on a GPU, with the reason."""
    if settings.device == "cpu":
        reasons = {"onnxruntime": "not asked (--device cpu)", "tensorflow": "not asked"}
    elif settings.device == "auto" and _no_gpu(gpu):
        reasons = {"onnxruntime": gpu.onnxruntime, "tensorflow": gpu.tensorflow}
    else:
        return []
    return [Row(name, None, GPU, runtime, None, None, why) for runtime, why in reasons.items()]


def _no_gpu(gpu: Gpu) -> bool:
    """Neither runtime can use a GPU here."""
    return bool(gpu.onnxruntime and gpu.tensorflow)


def _is_ort(method: str) -> bool:
    return method.startswith("onnxruntime")


def _tf_device(device: str) -> str:
    return "/GPU:0" if device == GPU else "/CPU:0"


def _first(outputs: dict) -> np.ndarray:
    return next(iter(outputs.values()))


def _source(name: str) -> dict[str, str]:
    return {"name": name, "file": "", "sha256": ""}


def _as_list(value: Any) -> list:
    if isinstance(value, dict):
        return list(value.values())
    return list(value) if isinstance(value, list | tuple) else [value]


def _join(*notes: str | None) -> str:
    return "; ".join(note for note in notes if note)
