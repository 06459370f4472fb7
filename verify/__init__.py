"""Numerical equivalence of TensorFlow and ONNX Runtime.

``verify.check(bundle, model=None, ...)`` returns a frozen :class:`Report`;
``verify.assert_equivalent`` is the same for pytest, failing with the table.
Importing this package does not import TensorFlow: only a check with a Keras
model does.
"""

from parity.verify.check import check
from parity.verify.compare import Check
from parity.verify.report import Report, StepErrors
from parity.verify.testing import assert_equivalent
from parity.verify.tolerance import Tolerance, TolerancePolicy

__all__ = [
    "Check",
    "Report",
    "StepErrors",
    "Tolerance",
    "TolerancePolicy",
    "assert_equivalent",
    "check",
]
