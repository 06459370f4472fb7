"""The comparison rule, tolerances and the report, on plain arrays."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from parity.runtime.errors import ParityError
from parity.verify.compare import Tolerance, compare_arrays
from parity.verify.generation import compare_generation
from parity.verify.report import Report
from parity.verify.tolerance import (
    DEFAULT,
    TF32,
    TolerancePolicy,
    for_precision,
    policy_from_options,
)

TOL = Tolerance(atol=1e-5, rtol=1e-4)


def test_equal_arrays_pass_with_zero_error():
    x = np.linspace(-1, 1, 30, dtype=np.float32).reshape(3, 10)
    check = compare_arrays("y", "output", x, x.copy(), TOL)
    assert check.passed and check.max_abs == 0 and check.rel_l2 == 0


def test_worst_element_and_needed_tolerances():
    expected = np.zeros((2, 3), np.float32) + 1
    actual = expected.copy()
    actual[1, 2] += 1e-3
    check = compare_arrays("y", "output", expected, actual, TOL)
    assert not check.passed
    assert check.worst_index == (1, 2)
    assert check.worst_expected == 1.0 and check.worst_actual == pytest.approx(1.001, rel=1e-6)
    assert check.max_abs == pytest.approx(1e-3, rel=1e-3)
    assert check.needed_atol == pytest.approx(1e-3 - 1e-4, rel=1e-2)
    assert check.needed_rtol == pytest.approx(1e-3 - 1e-5, rel=1e-2)
    # the needed tolerances do pass
    assert compare_arrays(
        "y", "o", expected, actual, Tolerance(check.needed_atol * 1.001, 1e-4)
    ).passed
    assert compare_arrays(
        "y", "o", expected, actual, Tolerance(1e-5, check.needed_rtol * 1.001)
    ).passed


@pytest.mark.parametrize(
    ("expected", "actual", "detail"),
    [
        (np.zeros((2, 3)), np.zeros((3, 2)), "shape (3, 2) where (2, 3) was expected"),
        (np.zeros(3, np.float32), np.zeros(3, np.float64), "dtype float64"),
        (np.zeros(3), np.array([0, np.nan, 0]), "non-finite value on one side only at (1,)"),
        (np.array([0, np.inf, 0]), np.array([0, 1e30, 0]), "non-finite"),
    ],
)
def test_structural_and_nonfinite_differences_fail(expected, actual, detail):
    check = compare_arrays("y", "output", expected, actual, TOL)
    assert not check.passed
    assert detail in check.detail


def test_nan_on_both_sides_is_equal():
    x = np.array([1.0, np.nan])
    assert compare_arrays("y", "output", x, x.copy(), TOL).passed


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(np.float32, st.integers(1, 20), elements=st.floats(-10, 10, width=32)),
    st.floats(-1e-3, 1e-3),
)
def test_verdict_is_numpy_allclose(expected, shift):
    actual = (expected + np.float32(shift)).astype(np.float32)
    check = compare_arrays("y", "output", expected, actual, TOL)
    assert check.passed == np.allclose(
        actual.astype(np.float64), expected.astype(np.float64), atol=TOL.atol, rtol=TOL.rtol
    )


def test_generation_tolerance_grows_by_the_documented_rule():
    expected = np.zeros((2, 10, 1), np.float32)
    drift = (1e-5 * (1 + 0.05 * np.arange(10)) * 0.9).astype(np.float32)  # inside the rule
    actual = expected + drift[None, :, None]
    check, curve = compare_generation("g", "y", expected, actual, TolerancePolicy(growth=0.05))
    assert check.passed and curve.first_failing_step is None
    assert len(curve.max_abs_per_step) == 10
    actual[:, 6] = 1e-4  # leaves the rule at step 6
    check, curve = compare_generation("g", "y", expected, actual, TolerancePolicy(growth=0.05))
    assert not check.passed and curve.first_failing_step == 6
    assert "step 6 of 10" in check.detail


def test_tolerance_options():
    policy = policy_from_options(["1e-3", "probs=1e-2"], ["probs=0.5"])
    assert policy.for_output("probs") == Tolerance(1e-2, 0.5)
    assert policy.for_output("other") == Tolerance(1e-3, DEFAULT.rtol)
    for bad in (["x=abc"], ["-1"], ["nan"]):
        with pytest.raises(ParityError, match="--atol"):
            policy_from_options(bad)


def test_report_json_schema():
    passed = compare_arrays("a", "output", np.ones(3), np.ones(3), TOL)
    failed = compare_arrays("b", "output", np.ones(3), np.zeros(3), TOL)
    report = Report("bundle", None, {"requested": "cpu"}, {"numpy": "x"}, (passed, failed))
    data = json.loads(report.to_json())
    assert data["passed"] is False
    for key in ("schema", "device", "versions", "checks", "notes", "generations"):
        assert key in data
    for key in ("name", "kind", "passed", "max_abs", "max_rel", "rel_l2", "atol", "rtol"):
        assert key in data["checks"][0]
    assert not report.passed and report.failures == (failed,)
    table = report.table()
    assert "PASS" in table and "FAIL" in table
    assert not Report("b", None, {}, {}, ()).passed  # no check is no proof


def test_tf32_widens_the_stock_allclose_rule_only():
    """Where TF32 ran, float32's stock tolerances would fail TF32's own
    rounding (measured on an H200: 8.1e-4 at 0.72, against 1e-5 + 1e-4 x 0.72);
    tolerances the caller chose stay, and without TF32 nothing changes."""
    stock = TolerancePolicy()
    assert for_precision(stock, tf32=False) is stock
    assert for_precision(stock, tf32=True).default == TF32
    expected, got = np.array([0.7180660]), np.array([0.7171816])
    assert not compare_arrays("y", "golden", expected, got, DEFAULT).passed
    assert compare_arrays("y", "golden", expected, got, TF32).passed
    chosen = policy_from_options(atol=["1e-5"])
    assert for_precision(chosen, tf32=True) is chosen
    custom = TolerancePolicy(default=Tolerance(2e-5, 1e-4))
    assert for_precision(custom, tf32=True) is custom
