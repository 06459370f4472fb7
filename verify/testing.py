"""A pytest helper for users' own CI equivalence tests::

from parity.verify import assert_equivalent

def test_exported_model_matches_keras():
    assert_equivalent("bundle/", "model.keras")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from parity.verify.check import DEFAULT_BATCHES, DEFAULT_TIMES, Progress, check
from parity.verify.report import Report
from parity.verify.tolerance import TolerancePolicy


def assert_equivalent(
    bundle: str | Path,
    model: str | Path | Any | None = None,
    *,
    inputs: Mapping[str, np.ndarray] | None = None,
    device: str = "auto",
    policy: TolerancePolicy | None = None,
    batches: Sequence[int] = DEFAULT_BATCHES,
    times: Sequence[int] = DEFAULT_TIMES,
    steps: int | None = None,
    seed: int = 0,
    tf32: bool = False,
    unsafe: bool = False,
    progress: Progress | None = None,
) -> Report:
    """Run :func:`verify.check` and fail with the report's table when a check fails.

    Args:
        bundle: the bundle's folder.
        model: the Keras model it was exported from (a ``.keras`` path or a
            loaded model); None checks the bundle's golden data only.
        inputs: arrays to run both runtimes on, by input name, in place of the
            random draws (needs ``model``).
        device: "auto", "cpu" or "gpu": where both runtimes run.
        policy: the tolerances; :class:`TolerancePolicy`'s defaults when None.
        batches: the batch sizes of the random draws.
        times: the time lengths of the random draws, where time is dynamic.
        steps: the horizon of a seq2seq generation; the manifest's when None.
        seed: the seed of the random draws.
        tf32: allow TF32 matmuls on a GPU, in both runtimes.
        unsafe: allow a ``.keras`` file that needs unsafe deserialization.
        progress: called with a short line as each stage starts.

    Returns:
        The report, when every check passed.

    Raises:
        AssertionError: a check failed; the message holds the report's table.
        ParityError: what :func:`verify.check` raises on bad input.
    """
    report = check(
        bundle,
        model,
        inputs=inputs,
        device=device,
        policy=policy,
        batches=batches,
        times=times,
        steps=steps,
        seed=seed,
        tf32=tf32,
        unsafe=unsafe,
        progress=progress,
    )
    if not report.passed:
        raise AssertionError("TensorFlow and ONNX Runtime disagree:\n" + report.table())
    return report
