"""``--plot``: the per-step error curve of each generation and the error
histogram of the output that came closest to (or went furthest past) its tolerance."""

from __future__ import annotations

from pathlib import Path

from parity.files import replacing
from parity.verify.compare import HISTOGRAM_EDGES, Check
from parity.verify.report import Report


def worst_check(report: Report) -> Check | None:
    """The check with the least room left under its tolerance."""
    candidates = [check for check in report.checks if check.error_histogram]
    if not candidates:
        return None
    return max(candidates, key=lambda c: c.needed_atol / c.atol if c.atol else c.max_abs)


def plot_report(report: Report, path: Path) -> None:
    """Draw the plots of ``report`` into the PNG file ``path``, atomically: a
    reader sees the old file or the whole new one, and a failed write leaves
    nothing behind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (curve_axes, histogram_axes) = plt.subplots(1, 2, figsize=(12, 4.5))
    curves = [g for g in report.generations if g.max_abs_per_step]
    for curve in curves:
        judged = curve.error_per_step if curve.allowed_per_step else curve.max_abs_per_step
        errors = [max(value or 0.0, 1e-12) for value in judged]
        curve_axes.semilogy(range(len(errors)), errors, label=curve.name)
    if curves:
        first = curves[0]
        if first.allowed_per_step:  # the noise rule: what each step may reach
            allowed, label = list(first.allowed_per_step), "allowed (noise rule)"
        else:
            n = len(first.max_abs_per_step)
            allowed = [first.atol * (1 + first.growth * t) for t in range(n)]
            label = "atol at step (rtol adds)"
        curve_axes.semilogy(range(len(allowed)), allowed, "k--", label=label)
        curve_axes.legend(fontsize=7)
    else:
        curve_axes.text(0.5, 0.5, "no generation in this bundle", ha="center", va="center")
    curve_axes.set(title="generation: max abs error per step", xlabel="step", ylabel="max |error|")

    worst = worst_check(report)
    if worst is not None:
        widths = [b - a for a, b in zip(HISTOGRAM_EDGES[:-1], HISTOGRAM_EDGES[1:], strict=True)]
        histogram_axes.bar(HISTOGRAM_EDGES[:-1], worst.error_histogram, width=widths, align="edge")
        histogram_axes.set_xscale("log")
        histogram_axes.axvline(worst.atol, color="k", linestyle="--", label="atol")
        histogram_axes.legend(fontsize=7)
        histogram_axes.set(title=f"|error| of {worst.name}", xlabel="|error|", ylabel="elements")
    figure.suptitle(("PASSED" if report.passed else "FAILED") + f": {report.bundle}", fontsize=9)
    figure.tight_layout()
    try:
        with replacing(path) as stream:
            figure.savefig(stream, format="png", dpi=100)
    finally:
        plt.close(figure)
