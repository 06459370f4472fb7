"""Numerical equivalence of TensorFlow and ONNX Runtime.

``verify.check(bundle, model=None, options)`` returns a frozen
:class:`Report`, ``options`` a :class:`VerifyOptions`;
``verify.assert_equivalent`` is the same for pytest, failing with the table.
Importing this package does not import TensorFlow: only a check with a Keras
model does.
"""

from parity.verify.check import check
from parity.verify.compare import Check
from parity.verify.options import VerifyOptions
from parity.verify.report import Report, StepErrors
from parity.verify.testing import assert_equivalent
from parity.verify.tolerance import Tolerance, TolerancePolicy

__all__ = [
    "Check",
    "Report",
    "StepErrors",
    "Tolerance",
    "TolerancePolicy",
    "VerifyOptions",
    "assert_equivalent",
    "check",
]
