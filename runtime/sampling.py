"""Drawing inputs for a graph from its manifest: shapes, value ranges, masks.

Used for golden data at export and for fresh inputs at verification, so the
same rules decide both: fixed dims as the manifest gives them, ``batch`` and
``time`` as asked, values inside each input's ``domain`` (token ids within the
vocabulary, images in [0, 1]) and, for a masked input, a length per row with
the padded steps set to the mask value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from math import prod

import numpy as np

from parity.runtime.bundle_format.manifest import MaskSpec, TensorSpec
from parity.runtime.errors import ParameterError, ParityError
from parity.runtime.limits import byte_limit, describe_bytes
from parity.runtime.npy import MAX_ARRAY_BYTES, MAX_ARRAY_BYTES_VARIABLE

DEFAULT_TIME = 7
DEFAULT_DIM = 4
DEFAULT_DOMAIN = {"kind": "uniform", "low": -1.0, "high": 1.0}


@dataclass(frozen=True)
class Sample:
    """Inputs by name; ``lengths`` holds each row's valid length when a mask applies."""

    inputs: dict[str, np.ndarray]
    lengths: np.ndarray | None = None


def sample_inputs(
    specs: Iterable[TensorSpec],
    batch: int,
    *,
    time: int | None = None,
    seed: int = 0,
    mask: MaskSpec | None = None,
    lengths: np.ndarray | None = None,
) -> Sample:
    """Random inputs for ``specs``. With ``mask``, its input gets one valid
    length per row (``lengths``, or drawn: the first row full, the last row of
    length 1, the rest anywhere in between) and mask values at padded steps,
    after the valid steps or before them as ``mask.padding`` says.

    Raises:
        ParameterError: inputs that would take more than the array limit of
            :mod:`parity.runtime.npy` together (named as ``batches``, the
            draws' batch sizes), refused before anything is drawn.
    """
    specs = list(specs)
    check_draw(specs, batch, time)
    rng = np.random.default_rng(seed)
    inputs = {}
    drawn = None
    for spec in specs:
        shape = tuple(_size(dim, batch, time) for dim in spec.shape)
        value = draw(spec, shape, rng, avoid=None if mask is None else mask.value)
        if mask is not None and spec.name == mask.input:
            drawn = _lengths(shape, rng, lengths)
            value = pad(value, drawn, mask)
        inputs[spec.name] = value
    if mask is not None and drawn is None:
        raise ParityError(f"mask input {mask.input!r} is not among the graph's inputs")
    return Sample(inputs, drawn)


def check_draw(specs: Iterable[TensorSpec], batch: int, time: int | None = None) -> None:
    """Refuse a draw whose inputs would take more than the array limit of
    :mod:`parity.runtime.npy` together, before anything is allocated.

    Args:
        specs: the inputs.
        batch: the rows drawn.
        time: the length of a ``time`` axis.

    Raises:
        ParameterError: for ``batches`` (the draws' batch sizes).
    """
    total = 0
    for spec in specs:
        shape = tuple(_size(dim, batch, time) for dim in spec.shape)
        total += prod(shape) * np.dtype(spec.dtype).itemsize
    limit = byte_limit(MAX_ARRAY_BYTES_VARIABLE, MAX_ARRAY_BYTES)
    if total > limit:
        steps = f" of {time} steps" if time else ""
        raise ParameterError(
            "batches",
            f"inputs of {batch} rows{steps} take {describe_bytes(total)}, beyond the limit of "
            f"{describe_bytes(limit)} (set {MAX_ARRAY_BYTES_VARIABLE} to raise it)",
        )


def sample_stream(
    specs: Iterable[TensorSpec], batch: int, steps: int, mask: MaskSpec | None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Whole sequences of ``steps`` steps to feed a stream in chunks. A
    stream's masked steps fall anywhere (a row with nothing to say at a
    tick), so the masked input gets them anywhere too: the first row none
    (when there are others), the last row (of three or more) a run from step
    2 over half the sequence, which covers whole chunks, and every other row
    its first two steps and about a third of the rest."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for spec in specs:
        shape = (batch, steps, *(_size(dim, batch, steps) for dim in spec.shape[2:]))
        value = draw(spec, shape, rng, avoid=None if mask is None else mask.value)
        if mask is not None and spec.name == mask.input:
            masked = rng.random((batch, steps)) < 0.3
            masked[:, :2] = True
            if batch > 1:
                masked[0] = False
            if batch > 2:
                masked[-1] = False
                masked[-1, 2 : 2 + steps // 2] = True
            value[masked] = mask.value
        inputs[spec.name] = value
    return inputs


def draw(
    spec: TensorSpec, shape: tuple[int, ...], rng: np.random.Generator, avoid: float | None = None
) -> np.ndarray:
    """Values inside the input's domain; token ids skip ``avoid`` (the mask value)."""
    domain = spec.domain or DEFAULT_DOMAIN
    dtype = np.dtype(spec.dtype)
    if domain["kind"] == "tokens":
        low = 1 if avoid == 0 else 0
        return rng.integers(low, max(int(domain["vocab"]), low + 1), shape).astype(dtype)
    if domain["kind"] == "uniform":
        if dtype.kind != "f":
            return rng.integers(int(domain["low"]), int(domain["high"]) + 1, shape).astype(dtype)
        return rng.uniform(domain["low"], domain["high"], shape).astype(dtype)
    raise ParityError(f"input {spec.name!r}: unknown value domain {domain['kind']!r}")


def pad(value: np.ndarray, lengths: np.ndarray, mask: MaskSpec) -> np.ndarray:
    """Set the steps past each row's length (or before it, for pre-padding)
    to the mask value."""
    value = value.copy()
    time = value.shape[1]
    for row, length in enumerate(lengths):
        if mask.padding == "pre":
            value[row, : time - length] = mask.value
        else:
            value[row, length:] = mask.value
    return value


def _lengths(shape: tuple[int, ...], rng: np.random.Generator, given) -> np.ndarray:
    batch, time = shape[0], shape[1]
    if given is not None:
        given = np.asarray(given, dtype=np.int64)
        if given.shape != (batch,) or (given < 0).any() or (given > time).any():
            raise ParityError(f"lengths must be {batch} values in 0..{time}, got {given.tolist()}")
        return given
    drawn = rng.integers(1, time + 1, batch)
    drawn[0] = time
    if batch > 1:
        drawn[-1] = 1
    return drawn


def _size(dim: int | str, batch: int, time: int | None) -> int:
    if isinstance(dim, int) and dim > 0:
        return dim
    if dim == "batch":
        return batch
    if dim == "time":
        return time or DEFAULT_TIME
    return DEFAULT_DIM
