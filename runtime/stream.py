"""Running a stream bundle chunk after chunk, with ONNX Runtime and numpy alone.

    from parity import runtime

    stream = runtime.open_stream("bundles/tagger_stream", batch=4)
    for chunk in chunks:                  # (4, any length >= 1, features)
        tags = stream.feed(chunk)["tags"]  # the chunk's outputs; states carried
    stream.reset(rows=[2])                # row 2 starts a new sequence

A :class:`Stream` holds one state per row of its batch. ``feed`` runs the
stream graph once on the chunk and the current states, keeps the new states
and returns the chunk's outputs; ``reset`` writes zeros (what Keras'
``reset_state()`` writes) into every row or some. A row with nothing to say
at a tick of a masked model can be fed mask values: masked steps keep the
state (the manifest's ``streaming.masked_steps`` says what the outputs do).

Threads: as for :class:`~parity.runtime.Bundle`, whose ONNX Runtime sessions
many streams share, one bundle serves any number of threads. A stream is a
small mutable object (its states): give each sequence source its own.
``feed``, ``reset`` and the states take the stream's lock, so a stream fed
from two threads is never corrupted, but its chunks then run in whatever
order the threads arrive.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from parity.runtime.bundle import Bundle, load_bundle
from parity.runtime.bundle_format.manifest import TensorSpec
from parity.runtime.bundle_format.streaming import StreamSpec
from parity.runtime.errors import BundleError, InputError, ParameterError, RunError, quoted
from parity.runtime.inputs import check_array


class Stream:
    """``batch`` independent sequences fed chunk by chunk through a stream
    bundle (:func:`open_stream` makes one, every state at zeros).

    ``spec`` is the manifest's streaming section, ``outputs`` its data
    outputs (each per step or per chunk); ``steps`` counts the steps fed to
    each row since its last reset."""

    def __init__(self, bundle: Bundle, batch: int) -> None:
        spec = bundle.manifest.streaming
        if spec is None:
            raise BundleError(
                f"{bundle.path}: not a stream bundle (export a stateful model, or any forward "
                "recurrent model with --streaming)"
            )
        self.bundle = bundle
        self.spec: StreamSpec = spec
        self.batch = batch
        graph = bundle.manifest.graph(spec.graph)
        self._inputs = [graph.input(name) for name in spec.inputs]
        self._session = bundle.session(spec.graph, batch)
        self.outputs = spec.outputs
        self._names = [output.name for output in spec.outputs]
        self._fetch = [*self._names, *(state.output for state in spec.states)]
        self._states = {s.input: np.zeros((batch, s.size), np.float32) for s in spec.states}
        self._lock = threading.Lock()
        self.steps = np.zeros(batch, np.int64)

    def feed(self, chunk: Mapping[str, Any] | np.ndarray) -> dict[str, np.ndarray]:
        """Run one chunk and carry the states on by its length.

        Args:
            chunk: ``{input name: (batch, time, ...)}``, or the one array of a
                one-input stream; ``time`` >= 1, the same for every input.

        Returns:
            Every data output by name: a per-step output ``(batch, time,
            ...)``, a per-chunk output its value after the chunk's last step.

        Raises:
            InputError: a missing or unknown input, a wrong dtype, rank, fixed
                dim or batch, inputs of different lengths, NaN or Inf.
            RunError: ONNX Runtime failed; the states are left as they were.
        """
        feeds = self._checked_chunk(chunk)
        length = next(iter(feeds.values())).shape[1]
        with self._lock:
            feeds.update(self._states)
            try:
                values = self._session.run(self._fetch, feeds)
            except Exception as exc:  # onnxruntime raises its own untyped errors
                file = self.bundle.manifest.graph(self.spec.graph).file
                raise RunError(f"{file}: ONNX Runtime failed: {quoted(exc, 400)}") from None
            count = len(self._names)
            for state, value in zip(self.spec.states, values[count:], strict=True):
                self._states[state.input] = value
            self.steps += length
        return dict(zip(self._names, values[:count], strict=True))

    def reset(self, rows: Iterable[int] | np.ndarray | None = None) -> None:
        """Write zeros into the states of ``rows`` (Keras: ``reset_state()``,
        which has no per-row form), so that their next chunk starts a new
        sequence.

        Args:
            rows: row indices, or a boolean mask of ``batch`` entries; None
                resets every row.

        Raises:
            ParameterError: a row outside the batch, or a mask of another size.
        """
        index = slice(None) if rows is None else _rows(rows, self.batch)
        with self._lock:
            for name, value in self._states.items():
                value = value.copy()  # ONNX Runtime's arrays may be read-only
                value[index] = 0.0
                self._states[name] = value
            self.steps[index] = 0

    @property
    def states(self) -> dict[str, np.ndarray]:
        """A copy of every state, by its graph input name (to save a stream
        and resume it with :meth:`set_states`)."""
        with self._lock:
            return {name: value.copy() for name, value in self._states.items()}

    def set_states(self, states: Mapping[str, Any]) -> None:
        """Replace some or all states.

        Args:
            states: ``(batch, size)`` values by state input name (the keys of
                :attr:`states`); copied.

        Raises:
            InputError: a name that is no state, a wrong shape, NaN or Inf.
        """
        known = {state.input: state for state in self.spec.states}
        new = {}
        for name, value in states.items():
            if name not in known:
                raise InputError(f"{name!r} is not a state of the stream (has: {', '.join(known)})")
            spec = TensorSpec(name, "float32", (self.batch, known[name].size))
            new[name] = np.array(check_array(spec, value), copy=True)
        with self._lock:
            self._states.update(new)

    def _checked_chunk(self, chunk: Mapping[str, Any] | np.ndarray) -> dict[str, np.ndarray]:
        if not isinstance(chunk, Mapping):
            if len(self._inputs) != 1:
                names = ", ".join(spec.name for spec in self._inputs)
                raise InputError(f"the stream takes several inputs ({names}): give a dict")
            chunk = {self._inputs[0].name: chunk}
        unknown = sorted(set(chunk) - {spec.name for spec in self._inputs})
        if unknown:
            raise InputError(f"input {unknown[0]!r} is not a sequence input of the stream")
        feeds: dict[str, np.ndarray] = {}
        for spec in self._inputs:
            if spec.name not in chunk:
                raise InputError(f"input {spec.name!r} is missing from the chunk")
            array = _checked(spec, chunk[spec.name])
            if array.shape[0] != self.batch:
                raise InputError(
                    f"input {spec.name!r}: batch {array.shape[0]}, but the stream was opened "
                    f"for {self.batch} rows"
                )
            first = next(iter(feeds.values()), array)
            if array.shape[1] != first.shape[1]:
                raise InputError(
                    f"input {spec.name!r}: {array.shape[1]} steps, where the chunk's other "
                    f"inputs have {first.shape[1]}"
                )
            feeds[spec.name] = array
        return feeds


def open_stream(bundle: Bundle | str | Path, batch: int = 1, device: str = "auto") -> Stream:
    """A stream of ``batch`` rows over a stream bundle, every state at zeros.

    The graph takes any batch: a bundle exported from a stateful Keras model
    records the batch that model was built for (``spec.keras_batch``), which a
    stream need not keep. A stream of one row runs on the bundle's one-thread
    session (ONNX Runtime's threads cost more than they give for one row).

    Args:
        bundle: a loaded bundle (:func:`load_bundle`), or its folder.
        batch: the number of rows, each its own sequence.
        device: where a bundle given as a folder runs ("auto", "cpu", "gpu").

    Raises:
        BundleError: not a stream bundle, or a damaged one.
        ParameterError: ``batch`` is not a positive integer.
    """
    if isinstance(batch, bool) or not isinstance(batch, int | np.integer) or batch < 1:
        raise ParameterError("batch", f"must be a positive integer, got {batch!r}")
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle, device=device)
    return Stream(bundle, int(batch))


def run_schedule(
    stream: Any,
    inputs: Mapping[str, np.ndarray],
    chunks: Sequence[int],
    resets: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Feed whole sequences to a stream in chunks, from zeros.

    Args:
        stream: a :class:`Stream`, or anything with its ``feed``, ``reset``,
            ``states`` and ``outputs`` (TensorFlow's side in verification).
        inputs: each sequence input, ``(batch, steps, ...)``.
        chunks: the chunks' lengths, summing to ``steps``.
        resets: ``(chunks, batch)`` booleans: before chunk ``i`` the rows
            where ``resets[i]`` is true are reset; None resets none.

    Returns:
        The outputs, per-step ones joined over time ``(batch, steps, ...)``,
        per-chunk ones stacked ``(chunks, batch, ...)``; and the final states.
    """
    stream.reset()
    per = {output.name: output.per for output in stream.outputs}
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in per}
    start = 0
    for index, length in enumerate(chunks):
        if resets is not None and resets[index].any():
            stream.reset(np.flatnonzero(resets[index]))
        chunk = {name: value[:, start : start + length] for name, value in inputs.items()}
        for name, value in stream.feed(chunk).items():
            pieces[name].append(value)
        start += length
    outputs = {
        name: np.concatenate(values, axis=1) if per[name] == "step" else np.stack(values)
        for name, values in pieces.items()
    }
    return outputs, stream.states


def _checked(spec: TensorSpec, value: Any) -> np.ndarray:
    """:func:`check_array`, with a shortcut for what a stream is fed most: a
    C-contiguous float array of the graph's dtype and shape, not token ids,
    of which only finiteness is left to check (at one row and one step a
    call costs about 30 us; the whole check about 10 of them)."""
    if (
        isinstance(value, np.ndarray)
        and value.dtype == spec.dtype
        and value.dtype.kind == "f"
        and value.flags.c_contiguous
        and value.ndim == spec.rank
        and value.shape[1] > 0
        and all(isinstance(d, str) or d == n for d, n in zip(spec.shape, value.shape, strict=True))
        and (spec.domain or {}).get("kind") != "tokens"
        and np.isfinite(value).all()
    ):
        return value
    return check_array(spec, value)


def _rows(rows: Iterable[int] | np.ndarray, batch: int) -> np.ndarray:
    array = np.asarray(rows if isinstance(rows, np.ndarray) else list(rows))
    if array.dtype == bool:
        if array.shape != (batch,):
            raise ParameterError("rows", f"a boolean mask must have {batch} entries")
        return np.flatnonzero(array)
    if array.size and (array.dtype.kind not in "iu" or array.min() < 0 or array.max() >= batch):
        raise ParameterError("rows", f"row indices must be whole numbers in [0, {batch})")
    return array.astype(np.int64)
