"""The one element-wise comparison of two arrays, and the one probability rule.

Every numerical judgement parity makes goes through :func:`compare_elements`:
verification summarises it per check (:mod:`parity.verify.compare`), the
dataset check reduces it per row (:mod:`parity.verify.row_errors`), and
export holds a graph it rewrote to Keras with it
(:mod:`parity.exporter.golden_data`). Each element gets a *tolerance ratio*,
``|actual - expected| / (atol + rtol * |expected|)``: it passes exactly when
the ratio is at most 1 (numpy's allclose rule), an element where both sides
are equal has ratio 0 whatever the tolerance, and a NaN or an infinity on one
side only (or infinities of opposite signs) has an infinite ratio and error.
The noise rule of verification is the same comparison against the float64
reference with ``atol`` set to the allowed multiple of the noise floor.

:func:`is_probability` says whether an output holds probability
distributions over its last axis (a softmax's), which decides whether the
report gives argmax agreement for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# How far values may stray from [0, 1], and their sum over the last axis from
# 1, for an output to count as probabilities (float32 softmax sums are within
# a few 1e-7 of 1).
PROBABILITY_SLACK = 1e-3


@dataclass(frozen=True)
class Elements:
    """Two arrays of one shape compared element by element (all float64).

    ``expected`` and ``actual`` are the values with every non-finite
    element replaced by 0 (so that sums and norms over them stay finite);
    ``one_sided`` marks the elements where the sides differ in a non-finite
    way, whose ``error`` and ``ratio`` are infinite."""

    expected: np.ndarray
    actual: np.ndarray
    error: np.ndarray
    allowed: np.ndarray
    ratio: np.ndarray
    one_sided: np.ndarray

    @property
    def passed(self) -> bool:
        """Whether every element is within its tolerance."""
        return bool(self.ratio.size == 0 or self.ratio.max() <= 1.0)


def compare_elements(
    expected: np.ndarray,
    actual: np.ndarray,
    atol: float | np.ndarray = 0.0,
    rtol: float | np.ndarray = 0.0,
) -> Elements:
    """``actual`` against ``expected``, element by element.

    Args:
        expected: the reference values.
        actual: the values held to them, of the same shape.
        atol: the absolute tolerance: a number, or an array that broadcasts
            against the values (a generation's tolerance growing by step).
        rtol: the relative tolerance, likewise.

    Raises:
        ValueError: the shapes differ (callers report that before comparing).
    """
    b = np.asarray(expected, np.float64)
    a = np.asarray(actual, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape {a.shape} against {b.shape}")
    with np.errstate(invalid="ignore"):
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        one_sided = (nan_a != nan_b) | ((np.isinf(a) | np.isinf(b)) & ~(nan_a | nan_b) & (a != b))
    finite = np.isfinite(a) & np.isfinite(b)
    a = np.where(finite, a, 0.0)
    b = np.where(finite, b, 0.0)
    error = np.abs(a - b)
    error[one_sided] = np.inf
    allowed = np.broadcast_to(atol + rtol * np.abs(b), b.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(error == 0, 0.0, error / allowed)
    ratio[one_sided] = np.inf
    return Elements(b, a, error, allowed, ratio, one_sided)


def is_probability(values: np.ndarray) -> bool:
    """Whether ``values`` are probability distributions over their last axis
    (a softmax's): floats over at least two classes, finite, each within
    [0, 1] and summing to 1, up to :data:`PROBABILITY_SLACK`.

    Args:
        values: an output, ``(batch, ..., classes)``.
    """
    values = np.asarray(values)
    if values.dtype.kind != "f" or values.ndim < 2 or values.shape[-1] < 2 or not values.size:
        return False
    if not np.isfinite(values).all():
        return False
    sums = values.sum(axis=-1, dtype=np.float64)
    return bool(
        values.min() >= -PROBABILITY_SLACK
        and values.max() <= 1 + PROBABILITY_SLACK
        and (np.abs(sums - 1) <= PROBABILITY_SLACK).all()
    )
