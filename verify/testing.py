"""A pytest helper for users' own CI equivalence tests::

from parity.verify import assert_equivalent

def test_exported_model_matches_keras():
    assert_equivalent("bundle/", "model.keras")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parity.verify.report import Report


def assert_equivalent(
    bundle: str | Path, model: str | Path | Any | None = None, **options: Any
) -> Report:
    """Run :func:`verify.check` and fail with the report's table when a check fails."""
    from parity.verify.check import check

    report = check(bundle, model, **options)
    if not report.passed:
        raise AssertionError("TensorFlow and ONNX Runtime disagree:\n" + report.table())
    return report
