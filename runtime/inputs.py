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
from parity.runtime.errors import InputError


def check_feeds(graph: GraphSpec, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Validate ``feeds`` for ``graph`` and return them as arrays of the graph's
    dtypes. Within a kind, dtypes are converted (float64 to float32, int32 to
    int64); across kinds (a float array for token ids) they are refused.
    A symbolic dim (``batch``, ``time``) must have one size across inputs."""
    expected = {spec.name for spec in graph.inputs}
    unknown = sorted(set(feeds) - expected)
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
    """One input: dtype kind, rank, fixed dims, no empty axis, finite values."""
    array = np.asarray(value)
    want = np.dtype(spec.dtype)
    if _kind(array.dtype) != _kind(want):
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
    if want.kind == "f" and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise InputError(
            f"input {spec.name!r}: holds NaN or Inf (first at index {tuple(int(i) for i in bad)})"
        )
    if want.kind in "iu" and array.dtype != want:
        info = np.iinfo(want)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise InputError(f"input {spec.name!r}: values do not fit in {want}")
    return np.asarray(array, dtype=want, order="C")


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
        raise InputError(
            f"input {mask.input!r}: row {row} has a real step ({step + 1}) after a padded one; "
            "this bundle's fused recurrent op needs post-padded rows (valid steps first)"
        )
