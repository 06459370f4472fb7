"""Task-level agreement: do the two runtimes pick the same class or token?

A numerical error far below the gap between the two largest probabilities
changes nothing a user sees; one near a tie flips a prediction. For outputs
that are probability distributions over their last axis
(:func:`parity.runtime.comparison.is_probability`: softmax classifiers,
taggers, token decoders) the report gives the share of positions (rows, and
steps where there is a time axis) whose argmax agrees, and for generations the
first step where some row's token differs.
"""

from __future__ import annotations

import numpy as np

from parity.runtime.comparison import is_probability


def argmax_agreement(expected: np.ndarray, actual: np.ndarray) -> float | None:
    """The share of positions whose argmax over the last axis agrees; None
    where ``expected`` holds no probabilities or the shapes differ.

    Args:
        expected: the reference's output.
        actual: the output held to it.
    """
    if expected.shape != actual.shape or not is_probability(expected):
        return None
    return float(np.mean(expected.argmax(axis=-1) == actual.argmax(axis=-1)))


def first_divergence(expected: np.ndarray, actual: np.ndarray) -> int | None:
    """The first step (axis 1) where some row's argmax differs; None where
    every token agrees or the output holds no probabilities.

    Args:
        expected: the reference generation, ``(batch, steps, classes)``.
        actual: the generation held to it.
    """
    if expected.shape != actual.shape or expected.ndim < 3 or not is_probability(expected):
        return None
    differs = expected.argmax(axis=-1) != actual.argmax(axis=-1)
    differs = differs.reshape(differs.shape[0], differs.shape[1], -1).any(axis=(0, 2))
    return int(np.argmax(differs)) if differs.any() else None
