"""What ``verify --plot`` draws and how the verify and dataset tables are laid
out: every value drawn is a share of the tolerance of the rule that judged it
(a passing check draws nothing past the limit), curves stay apart, exact
zeros are not data, a classifier gets no empty panel, and tables fit 100
columns."""

import numpy as np
import pytest

from parity.verify.compare import USED_EDGES, Check, compare_arrays
from parity.verify.dataset_report import DatasetReport, OutputSummary
from parity.verify.dataset_report import format_table as dataset_table
from parity.verify.generation import compare_generation
from parity.verify.plot import COLOURS, report_figure
from parity.verify.report import Report, format_table
from parity.verify.tolerance import DEFAULT, Tolerance, TolerancePolicy

ABOVE_LIMIT = [i for i, low in enumerate(USED_EDGES[:-1]) if low >= 1.0]


def _past_limit(check: Check) -> int:
    return sum(check.used_histogram[i] for i in ABOVE_LIMIT)


def test_a_check_that_passes_by_rtol_draws_no_element_past_its_limit():
    expected = np.full((4, 5), 100.0, np.float32)
    expected[0, 0] = 0.0  # an element without any error
    actual = expected + np.float32(5e-3) * (expected != 0)  # past atol, within rtol * |expected|
    check = compare_arrays("c", "output", expected, actual, DEFAULT)
    assert check.passed and check.max_abs > DEFAULT.atol
    assert _past_limit(check) == 0
    assert check.exact_elements == 1 and sum(check.used_histogram) == expected.size - 1
    failing = compare_arrays("c", "output", expected, actual * 1.01, DEFAULT)
    assert not failing.passed and _past_limit(failing) > 0


def test_under_the_noise_rule_each_element_is_judged_against_float64():
    exact = np.linspace(0.1, 1.0, 20).reshape(4, 5)
    expected = (exact + 1e-7).astype(np.float32)
    close = (exact - 1e-7).astype(np.float32)
    check = compare_arrays("c", "output", expected, close, DEFAULT, exact=exact, factor=10)
    assert check.rule == "noise" and check.passed and _past_limit(check) == 0
    far = (exact + 1e-4).astype(np.float32)
    check = compare_arrays("c", "output", expected, far, DEFAULT, exact=exact, factor=10)
    assert not check.passed and _past_limit(check) > 0


@pytest.mark.parametrize("rule", ["noise", "allclose"])
def test_each_step_of_a_generation_is_a_share_of_its_own_tolerance(rule):
    steps = np.arange(6, dtype=np.float64)
    exact = np.broadcast_to(0.5 + 0.01 * steps[None, :, None], (2, 6, 3)).copy()
    expected = (exact + 1e-7 * (1 + steps[None, :, None])).astype(np.float32)
    actual = expected.copy()
    actual[:, 4:] += np.float32(1e-2)  # leaves its tolerance at step 4
    policy = TolerancePolicy(fixed=rule == "allclose")
    check, curve = compare_generation(
        "g", "y", expected, actual, policy, exact=exact if rule == "noise" else None
    )
    assert curve.rule == rule and curve.first_failing_step == 4 and not check.passed
    used = np.asarray(curve.used_per_step)
    assert (used[:4] <= 1).all() and (used[4:] > 1).all()
    assert sum(check.used_histogram) + check.exact_elements == actual.size


def _report(checks, generations=()) -> Report:
    return Report("bundle", None, {"onnxruntime": ["CPUExecutionProvider"]}, {}, tuple(checks),
                  generations=tuple(generations))  # fmt: skip


def test_a_classifier_gets_one_panel_without_an_empty_generation_panel():
    expected = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    check = compare_arrays("probs batch=3", "output", expected, expected + 1e-7, DEFAULT)
    figure = report_figure(_report([check]))
    (axes,) = figure.axes
    assert "each element" in axes.get_title()


def test_identical_curves_and_exact_steps_stay_visible():
    exact = np.linspace(0.1, 0.9, 2 * 5 * 3).reshape(2, 5, 3)
    expected = (exact + 1e-7).astype(np.float32)
    policy = TolerancePolicy()
    curves = []
    for name in ("step loop", "loop graph"):  # the same values
        curves.append(compare_generation(name, "y", expected, expected, policy, exact=exact)[1])
    pair = compare_generation(
        "loop graph vs step loop", "y", expected, expected, policy,
        exact=expected.astype(np.float64), floors=np.full(5, 1e-6), factor=1.0,
    )[1]  # fmt: skip
    assert set(pair.used_per_step) == {0.0}
    figure = report_figure(_report([], [*curves, pair]))
    generations = figure.axes[0]
    lines = [line for line in generations.lines if line.get_label() and line.get_label()[0] != "_"]
    drawn = [line for line in lines if line.get_label() != "limit"]
    assert len({line.get_color() for line in drawn}) == len({line.get_marker() for line in drawn})
    assert len({line.get_color() for line in drawn}) == 3
    assert all(0 not in line.get_ydata() for line in drawn)  # zeros are not drawn as data
    (limit,) = [line for line in generations.lines if line.get_label() == "limit"]
    assert set(limit.get_ydata()) == {1.0}
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert any("the same values as 1" in label for label in labels)
    assert any("exact at every step" in label for label in labels)
    assert len(set(COLOURS)) == len(COLOURS)


def test_the_verify_table_fits_the_width_and_names_each_check():
    long = "generation/a_rather_long_output_name (loop graph vs step loop) batch=8 steps=150"
    expected = np.ones((2, 3), np.float32)
    checks = [
        compare_arrays(long, "generation", expected, expected, DEFAULT),
        compare_arrays("probs", "output", expected, expected, Tolerance(1e-4, 1e-3)),
        compare_arrays("probs batch=1", "output", expected, expected + 1e-3, DEFAULT),
    ]
    for width in (80, 100):
        text = format_table(_report(checks), width=width)
        assert max(len(line) for line in text.splitlines()) <= width, text
        assert all(word in text.split() for word in long.split())  # wrapped, never cut
        assert "allclose rule (a): atol 1.00e-05, rtol 1.00e-04" in text
        assert "allclose rule (b): atol 1.00e-04, rtol 1.00e-03" in text
        assert "argmax" not in text.splitlines()[0]  # no column of dashes only


def test_the_dataset_table_fits_100_columns():
    output = OutputSummary("a_long_output_name_of_a_model", "generation", 1e-5, 1e-4, 0.05,
                           3, 1e-7, 1e-6, 2e-3, 17, None)  # fmt: skip
    report = DatasetReport("bundle", "model.keras", "data/" + "x" * 120, "ray", 16, 1024, 12,
                           100_000, 3, (output,), (), 12.5, {}, {},
                           generation={"steps": 150, "path": "loop graph"})  # fmt: skip
    text = dataset_table(report, width=100)
    assert max(len(line) for line in text.splitlines() if "xxx" not in line) <= 100, text
    assert "times (1 + 0.05 t) at step t" in " ".join(text.split())
