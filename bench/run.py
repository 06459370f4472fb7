"""One benchmark run: every case, then the GEMM floor, with the machine's record."""

from __future__ import annotations

import datetime
import tempfile
from pathlib import Path

from parity.bench.cases import devices, gpu_status, run_case
from parity.bench.floor import measure_floor
from parity.bench.fusion import fusion_case
from parity.bench.machine import machine_info
from parity.bench.result import BenchResult, Settings
from parity.bench.stream import MODELS as STREAM_MODELS
from parity.bench.stream import stream_case
from parity.runtime.errors import ParameterError
from parity.runtime.progress import Progress, prefixed, silent, time_left

PRESETS = ("tiny", "seed")


def run_bench(settings: Settings, progress: Progress = silent) -> BenchResult:
    """Time every zoo model asked for (``settings.only``, else the whole zoo)
    and the GEMM floor at the sizes of their gate products.

    Args:
        settings: what to time, and how often.
        progress: hears one line per model (its number of all, and the time
            the rest should take at the pace so far) and per batch size, for
            a user who waits minutes.
    """
    from parity import models

    check_settings(settings)
    names = list(settings.only) or models.names()
    for name in names:
        models.get(name)  # an unknown name fails here, before anything is built
    machine = machine_info()  # before the run loads the machine itself
    gpu = gpu_status()
    devices(settings, gpu)  # --device gpu without a GPU fails here
    fusion = "masked_lstm" in names and settings.device != "gpu"
    total = len(names) + fusion
    left = time_left(total)
    rows, gemms = [], []
    with tempfile.TemporaryDirectory(prefix="parity-bench-") as folder:
        for done, name in enumerate(names):
            say = prefixed(progress, f"{done + 1}/{total} {name}: ")
            say(f"building, exporting, timing ({settings.preset} preset){left(done)}")
            case = run_case(name, settings, Path(folder), gpu, progress=say)
            rows += case.rows
            gemms += case.gemms
        if fusion:
            progress(
                f"{total}/{total} masked_lstm with LSTM, GRU, SimpleRNN: parity's graphs "
                f"against tf2onnx's Loop{left(total - 1)}"
            )
            case = fusion_case(settings, Path(folder))
            rows += case.rows
            gemms += case.gemms
        streamed = [name for name in names if name in STREAM_MODELS]
        if streamed and settings.device != "gpu":
            progress(f"{', '.join(streamed)} stateful, one step a call: stream against Keras")
            case = stream_case(settings, Path(folder), streamed)
            rows += case.rows
            gemms += case.gemms
    progress("floor: numpy float32 GEMM")
    # At least one warm-up: a cold BLAS call pays for starting its threads.
    floor = measure_floor(gemms, warmup=max(settings.warmup, 1), repeats=settings.repeats)
    machine["gpu"] = {
        "onnxruntime": gpu.onnxruntime or "usable",
        "tensorflow": gpu.tensorflow or "usable",
    }
    return BenchResult(
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        machine=machine,
        settings=settings,
        floor=floor,
        rows=tuple(rows),
    )


def check_settings(settings: Settings) -> Settings:
    """``settings`` if each field can be run; a :class:`ParameterError` names the field."""
    if settings.preset not in PRESETS:
        raise ParameterError(
            "preset", f"must be one of {', '.join(PRESETS)}, got {settings.preset!r}"
        )
    if settings.batches is not None and any(batch < 1 for batch in settings.batches):
        raise ParameterError("batches", f"must be at least 1, got {list(settings.batches)}")
    if settings.repeats < 1:
        raise ParameterError("repeats", f"must be at least 1, got {settings.repeats}")
    if settings.warmup < 0:
        raise ParameterError("warmup", f"must be 0 or more, got {settings.warmup}")
    return settings
