"""Timing one callable: warm-up calls, then repeated timed calls.

Machines are shared and noisy, so a benchmark reports the median of several
calls with the fastest and slowest beside it, never a single call or a mean
that one slow call can drag.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from parity.runtime.errors import ParityError


@dataclass(frozen=True)
class Timing:
    """Seconds per call over ``repeats`` timed calls."""

    median: float
    min: float
    max: float
    repeats: int


def measure(fn: Callable[[], Any], warmup: int = 2, repeats: int = 5) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed (wall
    clock, ``time.perf_counter``). The calls run one after another, each to
    completion: ``fn`` must return only once its result is computed."""
    if warmup < 0:
        raise ParityError(f"warm-up must be 0 or more calls, got {warmup}")
    if repeats < 1:
        raise ParityError(f"repeats must be at least 1, got {repeats}")
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return Timing(statistics.median(seconds), min(seconds), max(seconds), repeats)


# How long a block's untimed lead-in lasts at least. A runtime's worker
# threads spin for a while after its last call (ONNX Runtime's for 20 us as
# parity sets it, LiteRT's XNNPACK pool and TensorFlow's far longer) and
# hold the cores the next block's threads need. Measured in bench runs,
# ``conv_rows_lstm`` at batch 1, timed right after LiteRT's block: ONNX
# Runtime on two threads 377 us after a one-call lead-in, 91 to 93 us after
# this one (beside XLA alone, 72 us); LiteRT itself 188 against 138 us.
LEAD_IN_SECONDS = 0.02


def measure_interleaved(
    calls: dict[str, Callable[[], Any]],
    warmup: int = 2,
    repeats: int = 5,
    rounds: int = 3,
    lead_in: float = LEAD_IN_SECONDS,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Timing]:
    """Time several callables that compete for the same machine, taking turns.

    Each callable gets ``warmup`` untimed calls first. Then, ``rounds`` times
    over, each callable runs one block: an untimed lead-in, calls until
    ``lead_in`` seconds have passed (one call at least), then its share of
    the ``repeats`` timed calls. Taking turns in blocks spreads a drift of the
    machine over every callable alike, and the lead-in absorbs what the
    previous block leaves behind (worker threads that spin after a call and
    slow whatever runs next). Returns the timing of each callable over its
    ``repeats`` timed calls.

    Args:
        calls: the callables to time, by name; each returns once its result is computed.
        warmup: untimed calls of each callable before the rounds.
        repeats: timed calls of each callable, spread over the rounds.
        rounds: how many times each callable gets a block (at most ``repeats``).
        lead_in: the least seconds of a block's untimed lead-in.
        clock: the seconds counter that times the calls and the lead-in (a
            test's own clock; wall-clock time by default).
    """
    if warmup < 0:
        raise ParityError(f"warm-up must be 0 or more calls, got {warmup}")
    if repeats < 1:
        raise ParityError(f"repeats must be at least 1, got {repeats}")
    rounds = max(1, min(rounds, repeats))
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for index in range(rounds):
        share = repeats // rounds + (1 if index < repeats % rounds else 0)
        for name, fn in calls.items():
            started = clock()
            fn()
            while clock() - started < lead_in:
                fn()
            for _ in range(share):
                started = clock()
                fn()
                seconds[name].append(clock() - started)
    return {
        name: Timing(statistics.median(s), min(s), max(s), repeats) for name, s in seconds.items()
    }
