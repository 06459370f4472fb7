"""Numerical equivalence of TensorFlow and ONNX Runtime.

``verify.check(bundle, model=None, ...)`` returns a frozen :class:`Report`;
``verify.assert_equivalent`` is the same for pytest, failing with the table.
Importing this package does not import TensorFlow: only a check with a Keras
model does.
"""

from verify.check import check
from verify.compare import Check, Tolerance
from verify.report import Report, StepErrors
from verify.testing import assert_equivalent
from verify.tolerance import TolerancePolicy

__all__ = [
    "Check",
    "Report",
    "StepErrors",
    "Tolerance",
    "TolerancePolicy",
    "assert_equivalent",
    "check",
]
