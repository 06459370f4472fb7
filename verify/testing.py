"""A pytest helper for users' own CI equivalence tests::

from parity.verify import assert_equivalent

def test_exported_model_matches_keras():
    assert_equivalent("bundle/", "model.keras")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parity.verify.check import check
from parity.verify.options import VerifyOptions
from parity.verify.report import Report


def assert_equivalent(
    bundle: str | Path, model: str | Path | Any | None = None, **options: Any
) -> Report:
    """Run :func:`parity.verify.check` and fail with the report's table when a
    check fails.

    Args:
        bundle: the bundle's folder.
        model: the Keras model it was exported from (a path or a loaded
            model); None checks the bundle's golden data only.
        **options: the fields of :class:`parity.verify.options.VerifyOptions`
            (device, policy, batches, times, steps, seed, tf32, unsafe), and
            :func:`parity.verify.check`'s ``inputs`` and ``progress``.

    Returns:
        The report, when every check passed.

    Raises:
        AssertionError: a check failed; the message holds the report's table.
        ParityError: what :func:`parity.verify.check` raises on bad input.
    """
    inputs, progress = options.pop("inputs", None), options.pop("progress", None)
    report = check(bundle, model, VerifyOptions(**options), inputs=inputs, progress=progress)
    if not report.passed:
        raise AssertionError("TensorFlow and ONNX Runtime disagree:\n" + report.table())
    return report
