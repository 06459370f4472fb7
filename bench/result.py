"""What a benchmark run found, as plain frozen data.

A :class:`Row` is one way of running one model at one batch size: timed, or
skipped with the reason. Rates are derived from the row's operation count
and the run's GEMM peak, so that every row is judged against the same floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parity.bench.floor import Gemm, peak_gflops
from parity.bench.timing import Timing

CPU = "cpu"
GPU = "gpu"
# Methods that run the model with TensorFlow or its runtimes (Keras, tf.function,
# XLA, LiteRT) begin with one of these: every row is held to the best of them.
TENSORFLOW_FAMILY = ("keras", "tf", "litert")


@dataclass(frozen=True)
class Row:
    """``method`` on ``device`` for ``model`` at ``batch`` rows (None: every
    batch, for a row that is skipped as a whole). ``flops`` is the work of one
    call; ``note`` says why a row was skipped or what to know about it."""

    model: str
    batch: int | None
    device: str
    method: str
    timing: Timing | None
    flops: int | None = None
    note: str = ""

    @property
    def skipped(self) -> bool:
        return self.timing is None

    @property
    def gflops(self) -> float | None:
        if self.timing is None or not self.flops:
            return None
        return self.flops / self.timing.median / 1e9

    def floor_seconds(self, peak: float) -> float | None:
        """The time this row's work takes at ``peak`` GFLOP/s."""
        return self.flops / (peak * 1e9) if self.flops and peak else None

    def floor_multiple(self, peak: float) -> float | None:
        """How many times the floor time the row took."""
        floor = self.floor_seconds(peak)
        return self.timing.median / floor if floor and self.timing else None


def is_tensorflow_family(method: str) -> bool:
    return method.startswith(TENSORFLOW_FAMILY)


def best_tensorflow(rows: tuple[Row, ...]) -> dict[tuple, Row]:
    """The fastest timed TensorFlow-family row of each (model, batch, device)."""
    best: dict[tuple, Row] = {}
    for row in rows:
        if row.timing is None or not is_tensorflow_family(row.method):
            continue
        key = (row.model, row.batch, row.device)
        if key not in best or row.timing.median < best[key].timing.median:
            best[key] = row
    return best


def versus_tensorflow(row: Row, best: dict[tuple, Row]) -> float | None:
    """``row``'s median over the best TensorFlow-family median of its model,
    batch and device (below 1: faster than TensorFlow's best), or None."""
    fastest = best.get((row.model, row.batch, row.device))
    if row.timing is None or fastest is None:
        return None
    return row.timing.median / fastest.timing.median


@dataclass(frozen=True)
class Settings:
    """What was asked: preset, batch sizes (None: the preset's), timing, device."""

    preset: str = "seed"
    batches: tuple[int, ...] | None = None
    repeats: int = 5
    warmup: int = 2
    device: str = "auto"
    only: tuple[str, ...] = ()

    def command(self) -> str:
        """The command line that repeats this run."""
        parts = ["parity", "bench", "--preset", self.preset]
        for name in self.only:
            parts += ["--only", name]
        for batch in self.batches or ():
            parts += ["--batch", str(batch)]
        parts += ["--repeats", str(self.repeats), "--warmup", str(self.warmup)]
        return " ".join([*parts, "--device", self.device])


@dataclass(frozen=True)
class BenchResult:
    """A whole run: when, where, what was asked, the floor and every row."""

    date: str
    machine: dict[str, Any]
    settings: Settings
    floor: tuple[Gemm, ...]
    rows: tuple[Row, ...]

    @property
    def peak(self) -> float:
        return peak_gflops(self.floor) if self.floor else 0.0
