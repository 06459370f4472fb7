"""The words of progress lines: how far a long run has got and how long the rest should take.

Commands that run for minutes (training, export, coverage, bench) print one
line per event to stderr; the functions that do the work take a
:data:`Progress` to say each line to, and these helpers word "3/53" and
"2 min 10 s left" the same way everywhere. Nothing here prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Hears one line per event; prints it, or not.
Progress = Callable[[str], None]


def silent(line: str) -> None:
    """A :data:`Progress` that says nothing.

    Args:
        line: the line not said.
    """


def prefixed(progress: Progress, prefix: str) -> Progress:
    """``progress`` with ``prefix`` before each line ("2/5 masked_lstm: ").

    Args:
        progress: hears the lines.
        prefix: what each line starts with.
    """
    return lambda line: progress(prefix + line)


def time_left(total: int, clock: Callable[[], float] = time.monotonic) -> Callable[[int], str]:
    """A function of how many of ``total`` items are done that says how long
    the rest should take at the pace so far, to end a progress line with
    ("; 2 min 10 s left"), or "" before the first is done and once all are.
    The pace counts from this call.

    Args:
        total: how many items the run has.
        clock: a seconds counter (monotonic time; a test's own clock).
    """
    started = clock()

    def left(done: int) -> str:
        if done <= 0 or done >= total:
            return ""
        return f"; {duration((clock() - started) / done * (total - done))} left"

    return left


def duration(seconds: float) -> str:
    """``seconds`` as a person reads a wait: "45 s", "2 min 05 s", "1 h 20 min".

    Args:
        seconds: a length of time, 0 or more.
    """
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
