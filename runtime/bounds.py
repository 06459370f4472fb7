"""Every ONNX Runtime run bounded in time and memory.

A bundle from someone else can be self-consistent (its hashes match) and
still hostile: a ``Loop`` whose trip count is 2^62 runs forever, a 1 KB
``ConstantOfShape`` asks for tens of gigabytes. Two limits, each raisable
through the environment, hold every run of :class:`parity.runtime.Bundle`:

- :data:`MAX_RUN_SECONDS` (600 s) per run: a watchdog thread sets the run's
  ``RunOptions.terminate``, which ONNX Runtime checks between kernels and at
  every iteration of a ``Loop``; raise it with ``PARITY_MAX_RUN_SECONDS``
  (read at each run);
- the memory of ONNX Runtime's CPU allocations, three quarters of this
  machine's memory by default (``PARITY_MAX_RUN_BYTES``, read when the first
  session is opened): every session allocates from one arena shared by the
  process (ONNX Runtime's environment allocator) whose ``max_mem`` is the
  limit, so an allocation beyond it fails at once rather than after the
  machine has run out of memory. ONNX Runtime's constant folding, which
  computes constant subgraphs when a session opens, outside that arena, is
  off (:data:`UNBOUNDED_OPTIMIZERS`): what it would fold is computed when the
  graph runs, within the limit.

A run stopped by a limit raises :class:`LimitError` naming it and how to
raise it, which the command line reports as bad input (exit 2), never as a
disagreement of the runtimes.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from parity.runtime.errors import LimitError, ParameterError, RunError, quoted
from parity.runtime.limits import byte_limit, describe_bytes

MAX_RUN_SECONDS = 600.0
MAX_RUN_SECONDS_VARIABLE = "PARITY_MAX_RUN_SECONDS"
MAX_RUN_BYTES_VARIABLE = "PARITY_MAX_RUN_BYTES"
# The default memory limit, as a share of the machine's memory: room for the
# process itself (TensorFlow, the arrays compared) beside ONNX Runtime's.
MEMORY_SHARE = 0.75
# Where the machine's memory cannot be read.
FALLBACK_RUN_BYTES = 8 * 2**30
# ONNX Runtime's graph optimizers that allocate outside the arena, unbounded,
# when a session opens: constant folding computes a 1 KB ``ConstantOfShape``
# of 1 GiB there. The exporter's graphs are folded already (onnx-simplifier):
# with folding off, the zoo's graphs run in the same time, within 1 us.
UNBOUNDED_OPTIMIZERS = ["ConstantFolding"]
# What ONNX Runtime's arena says when an allocation would pass its max_mem.
_ARENA_FULL = re.compile(r"Available memory of \d+ is smaller than requested bytes of (\d+)")


def run_seconds() -> float:
    """The time limit of one run in seconds: ``PARITY_MAX_RUN_SECONDS`` when
    set (a number above 0), else :data:`MAX_RUN_SECONDS`."""
    text = os.environ.get(MAX_RUN_SECONDS_VARIABLE, "").strip()
    if not text:
        return MAX_RUN_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise ParameterError(
            MAX_RUN_SECONDS_VARIABLE, f"must be a number of seconds above 0, got {text!r}"
        )
    return seconds


def default_run_bytes() -> int:
    """:data:`MEMORY_SHARE` of this machine's physical memory
    (:data:`FALLBACK_RUN_BYTES` where the system does not say)."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows), or no such name
        total = 0
    return int(total * MEMORY_SHARE) if total > 0 else FALLBACK_RUN_BYTES


def run_bytes() -> int:
    """The memory limit of ONNX Runtime's allocations in bytes:
    ``PARITY_MAX_RUN_BYTES`` when set, else :func:`default_run_bytes`."""
    return byte_limit(MAX_RUN_BYTES_VARIABLE, default_run_bytes())


def bound_memory(options: Any) -> None:
    """Make a session allocate from the process's shared arena, whose size is
    the memory limit (registered with ONNX Runtime once per process, when
    first asked).

    Args:
        options: the session's ``onnxruntime.SessionOptions``.
    """
    _register_arena()
    options.add_session_config_entry("session.use_env_allocators", "1")


@functools.cache
def _register_arena() -> int:
    """Register the shared CPU arena of :func:`run_bytes` bytes; its size
    (0 where ONNX Runtime refused: another arena of this process, an app's,
    is then used as it is)."""
    import onnxruntime as ort

    limit = run_bytes()
    arena, default = ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, ort.OrtMemType.DEFAULT
    memory = ort.OrtMemoryInfo("Cpu", arena, 0, default)
    # Extend by what is asked (strategy 1), not by powers of two: the arena
    # never takes more than the allocations need.
    settings = ort.OrtArenaCfg({"max_mem": limit, "arena_extend_strategy": 1})
    try:
        ort.create_and_register_allocator(memory, settings)
    except Exception:  # onnxruntime raises its own untyped errors
        return 0
    return limit


@contextlib.contextmanager
def watched() -> Iterator[Any]:
    """``onnxruntime.RunOptions`` whose runs are stopped once the time limit
    (:func:`run_seconds`) has passed since the block began: the steps of one
    generation together."""
    options = _run_options()
    key = _WATCHDOG.add(options, run_seconds())
    try:
        yield options
    finally:
        _WATCHDOG.forget(key)


def run(
    session: Any,
    names: Sequence[str],
    feeds: Mapping[str, Any],
    where: str,
    options: Any = None,
) -> list[Any]:
    """``session.run(names, feeds)`` within the limits; ONNX Runtime's
    failure raised as one line that starts with ``where``.

    Args:
        session: an ``onnxruntime.InferenceSession``.
        names: the outputs to compute.
        feeds: the checked inputs.
        where: what ran, for messages (the graph file, a generation's step).
        options: the ``RunOptions`` of an enclosing :func:`watched` block
            (the steps of a generation); None watches this run alone.

    Raises:
        LimitError: the run went beyond the time or the memory limit.
        RunError: ONNX Runtime failed otherwise.
    """
    if options is None:
        options = _run_options()
        key = _WATCHDOG.add(options, run_seconds())
        try:
            return run(session, names, feeds, where, options)
        finally:
            _WATCHDOG.forget(key)
    try:
        return session.run(names, feeds, options)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        if options.terminate:
            raise LimitError(
                f"{where}: ONNX Runtime ran beyond the time limit of {run_seconds():g} s per "
                f"run and was stopped (set {MAX_RUN_SECONDS_VARIABLE}=<seconds> to raise it)"
            ) from None
        full = _ARENA_FULL.search(str(exc))
        if full:
            limit = _register_arena() or run_bytes()
            raise LimitError(
                f"{where}: ONNX Runtime asked for {describe_bytes(int(full[1]))}, more than the "
                f"memory limit of {describe_bytes(limit)} leaves "
                f"(set {MAX_RUN_BYTES_VARIABLE}=<bytes> to raise it)"
            ) from None
        raise RunError(f"{where}: ONNX Runtime failed: {quoted(exc, 400)}") from None


def _run_options() -> Any:
    """``RunOptions`` of a run whose failure parity reports itself, in one
    line: ONNX Runtime logs none of it to stderr."""
    import onnxruntime as ort

    options = ort.RunOptions()
    options.log_severity_level = 4  # fatal only
    return options


class _Watchdog:
    """One daemon thread that stops the runs whose deadline has passed by
    setting their ``RunOptions.terminate``. A run only adds its deadline
    (the thread is woken only for a deadline earlier than the one it waits
    for): a timer thread per run would cost more than a one-row run itself."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._deadlines: dict[int, tuple[float, Any]] = {}
        self._ids = itertools.count()
        self._wakes_at = float("inf")  # when the thread looks again
        self._pid = 0  # the process the thread runs in (a fork has none)

    def add(self, options: Any, seconds: float) -> int:
        """Stop the runs of ``options`` once ``seconds`` have passed; the key
        that :meth:`forget` takes."""
        key = next(self._ids)
        deadline = time.monotonic() + seconds
        with self._changed:
            if self._pid != os.getpid():
                self._pid, self._wakes_at = os.getpid(), float("inf")
                threading.Thread(target=self._watch, name="parity-run-limit", daemon=True).start()
            self._deadlines[key] = (deadline, options)
            if deadline < self._wakes_at:
                self._wakes_at = deadline
                self._changed.notify()
        return key

    def forget(self, key: int) -> None:
        """Forget the deadline of ``key`` (its runs ended)."""
        with self._changed:
            del self._deadlines[key]

    def _watch(self) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                pending = []
                for deadline, options in self._deadlines.values():
                    if deadline <= now:
                        options.terminate = True
                    else:
                        pending.append(deadline)
                self._wakes_at = min(pending, default=float("inf"))
                self._changed.wait(None if not pending else self._wakes_at - now)


_WATCHDOG = _Watchdog()
