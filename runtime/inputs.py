"""Checking arrays against a graph's inputs before ONNX Runtime sees them.

ONNX Runtime's own errors name an index, not the input's meaning, and accept
things that are wrong for a recurrent model (a time length of 0, NaN). Every
check here says which input is wrong and how.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from parity.runtime.bundle_format.manifest import Dim, GraphSpec, MaskSpec, TensorSpec
from parity.runtime.errors import InputError, quoted


def check_feeds(graph: GraphSpec, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Validate ``feeds`` for ``graph`` and return them as arrays of the graph's
    dtypes. Within a kind, dtypes are converted (float64 to float32, int32 to
    int64); across kinds (a float array for token ids) they are refused, except
    integer token ids for a graph that takes them as floats.
    A symbolic dim (``batch``, ``time``) must have one size across inputs."""
    if not isinstance(feeds, Mapping):
        raise InputError(
            f"the inputs of {graph.file}: expected a mapping of input names to arrays (a dict), "
            f"got {type(feeds).__name__}"
        )
    expected = {spec.name for spec in graph.inputs}
    unknown = sorted(set(feeds) - expected, key=str)
    if unknown:
        raise InputError(
            f"input {unknown[0]!r} is not an input of {graph.file} "
            f"(it takes: {', '.join(sorted(expected))})"
        )
    sizes: dict[str, tuple[int, str]] = {}
    checked = {}
    for spec in graph.inputs:
        if spec.name not in feeds:
            raise InputError(
                f"input {spec.name!r} is missing (the graph takes: {', '.join(sorted(expected))})"
            )
        array = check_array(spec, feeds[spec.name])
        for axis, (dim, size) in enumerate(zip(spec.shape, array.shape, strict=True)):
            if isinstance(dim, str):
                seen = sizes.setdefault(dim, (size, spec.name))
                if seen[0] != size:
                    raise InputError(
                        f"input {spec.name!r}: axis {axis} ({dim}) is {size}, "
                        f"but input {seen[1]!r} has {dim} {seen[0]}"
                    )
        checked[spec.name] = array
    return checked


def check_array(spec: TensorSpec, value: Any) -> np.ndarray:
    """One input: dtype kind, rank, fixed dims, no empty axis; then, as the
    graph's dtype, finite values (a float64 beyond float32's range is refused,
    not turned into Inf), and token ids (an input whose domain is
    ``{"kind": "tokens", "vocab": N}``) whole numbers in ``[0, N)``. Token ids
    may be integers where the graph takes floats (Keras' ``Input`` is float32
    unless told otherwise, also in front of an ``Embedding``): they are cast
    after the range check."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        reason = quoted(exc)
        raise InputError(f"input {spec.name!r}: not an array ({reason})") from None
    want = np.dtype(spec.dtype)
    domain = spec.domain or {}
    vocab = domain.get("vocab") if domain.get("kind") == "tokens" else None
    vocab = vocab if isinstance(vocab, int) else None
    ids_for_floats = vocab is not None and want.kind == "f" and array.dtype.kind in "iu"
    if _kind(array.dtype) != _kind(want) and not ids_for_floats:
        raise InputError(
            f"input {spec.name!r}: dtype {array.dtype} does not fit, expected {want} "
            f"(shape {describe_shape(spec.shape)})"
        )
    if array.ndim != spec.rank:
        raise InputError(
            f"input {spec.name!r}: rank {array.ndim} (shape {array.shape}), expected rank "
            f"{spec.rank} (shape {describe_shape(spec.shape)})"
        )
    for axis, (dim, size) in enumerate(zip(spec.shape, array.shape, strict=True)):
        if isinstance(dim, int) and dim > 0 and size != dim:
            raise InputError(
                f"input {spec.name!r}: axis {axis} has size {size}, expected {dim} "
                f"(shape {array.shape}, expected {describe_shape(spec.shape)})"
            )
        if size == 0:
            what = dim if isinstance(dim, str) else f"axis {axis}"
            raise InputError(f"input {spec.name!r}: {what} is 0 (shape {array.shape})")
    if ids_for_floats:  # checked before the cast: a huge id would round to one in range
        check_token_ids(spec.name, array, vocab)
    if want.kind in "iu" and array.dtype != want:
        info = np.iinfo(want)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise InputError(f"input {spec.name!r}: values do not fit in {want}")
    with np.errstate(over="ignore", invalid="ignore"):
        cast = np.asarray(array, dtype=want, order="C")
    if want.kind == "f":
        _check_finite(spec.name, array, cast)
    if vocab is not None:
        check_token_ids(spec.name, cast, vocab)
    return cast


def _check_finite(name: str, array: np.ndarray, cast: np.ndarray) -> None:
    """Checked after the cast: a finite float64 may overflow the graph's float32."""
    bad = ~np.isfinite(cast)
    if not bad.any():
        return
    index = _first(bad)
    if np.isfinite(array[index]):
        raise InputError(
            f"input {name!r}: value {array[index]!s} at index {index} overflows {cast.dtype} "
            f"(largest {np.finfo(cast.dtype).max:.4g})"
        )
    raise InputError(f"input {name!r}: holds NaN or Inf (first at index {index})")


def check_token_ids(name: str, ids: np.ndarray, vocab: int) -> None:
    """Token ids must be whole numbers in ``[0, vocab)``: ONNX Runtime reads
    an id outside the embedding table silently (a negative one from its end),
    TensorFlow fails with a traceback.

    Args:
        name: the input's name, for the message.
        ids: the ids, integer or float.
        vocab: the vocabulary size of the embedding the input feeds.

    Raises:
        InputError: an id that is not a whole number or is outside the vocabulary.
    """
    if ids.dtype.kind == "f":
        fractional = ids != np.floor(ids)
        if fractional.any():
            index = _first(fractional)
            raise InputError(
                f"input {name!r}: token id {ids[index].item()} at index {index} is not a whole "
                f"number (vocabulary of {vocab} tokens)"
            )
    outside = (ids < 0) | (ids >= vocab)
    if outside.any():
        index = _first(outside)
        raise InputError(
            f"input {name!r}: token id {ids[index].item()} at index {index} is outside the "
            f"vocabulary [0, {vocab})"
        )


def _first(flags: np.ndarray) -> tuple[int, ...]:
    """The index of the first True in ``flags``."""
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(flags)), flags.shape))


def describe_shape(shape: tuple[Dim, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _kind(dtype: np.dtype) -> str:
    if dtype.kind == "f":
        return "float"
    if dtype.kind in "iu":
        return "int"
    return dtype.kind


def check_prefix_mask(array: np.ndarray, mask: MaskSpec) -> None:
    """A fused masked graph counts each row's valid steps, so they must come
    first (post-padding): refuse a real step after a padded one."""
    padded = np.all(array == mask.value, axis=tuple(range(2, array.ndim)))
    late = ~padded[:, 1:] & padded[:, :-1]
    if late.any():
        row, step = (int(i) for i in np.argwhere(late)[0])
        subject = f"row {row}" if len(array) > 1 else "the row"
        raise InputError(
            f"input {mask.input!r}: {subject} has a real step ({step + 1}) after a padded one; "
            "this bundle's fused recurrent op needs post-padded rows (valid steps first)"
        )
