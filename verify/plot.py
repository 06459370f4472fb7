"""``--plot``: the pictures of a verification, one question a panel.

Every value drawn is a share of a tolerance: the error a rule judged over the
error that rule allows (the noise rule: its multiple of the noise floor; the
allclose rule: ``atol + rtol * |expected|``, grown by step over a generation),
so one line at 1 is the limit of every curve and every element, whichever
rule judged it, and nothing drawn past it can have passed.

- "Did each generation stay within its limit, step by step?" (seq2seq only):
  one curve a generation, each in its own colour, marker and line style;
  curves that are the same are drawn in layers (the first widest) and the
  legend says which they repeat. A step without any error is a hollow marker
  on the bottom edge, labelled exact: a log axis has no place for 0.
- "How much of its tolerance did each element use?": the histogram of the
  check that came closest to its limit (or went furthest past it); elements
  without any error are counted in words.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from parity.files import replacing
from parity.verify.compare import USED_EDGES, Check
from parity.verify.report import Report, StepErrors

# Colours that stay apart on white and in print, and markers and line styles
# to tell curves apart where colours are not enough (the bench plot's too).
COLOURS = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#e377c2",
    "#8c564b", "#bcbd22", "#000075", "#469990", "#800000", "#7f7f7f", "#000000",
)  # fmt: skip
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "p", "h", "d", "8")
LINE_STYLES = ("-", "--", "-.", ":")


def worst_check(report: Report) -> Check | None:
    """The check with the least room left under its tolerance (or the most
    past it), among those that compared values element by element.

    Args:
        report: the verification report.
    """
    candidates = [check for check in report.checks if check.used_histogram or check.exact_elements]
    if not candidates:
        return None
    return max(candidates, key=_used)


def plot_report(report: Report, path: Path) -> None:
    """Draw the pictures of ``report`` into the PNG file ``path``, atomically:
    a reader sees the old file or the whole new one, and a failed write leaves
    nothing behind.

    Args:
        report: the verification report.
        path: the PNG file to write or replace.
    """
    import matplotlib.pyplot as plt

    figure = report_figure(report)
    try:
        with replacing(path) as stream:
            figure.savefig(stream, format="png", dpi=100)
    finally:
        plt.close(figure)


def report_figure(report: Report) -> Any:
    """The matplotlib figure :func:`plot_report` writes: the generations'
    panel where the report has any, then the worst check's histogram.

    Args:
        report: the verification report.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [curve for curve in report.generations if curve.used_per_step]
    worst = worst_check(report)
    panels = (1 if curves else 0) + (1 if worst is not None else 0)
    figure, axes = plt.subplots(
        1,
        max(panels, 1),
        figsize=(13 if panels == 2 else 7, 4.6 + 0.16 * (len(curves) + 1)),
        layout="constrained",
        squeeze=False,
    )
    panels = list(axes[0])
    if curves:
        draw_generations(panels.pop(0), curves)
        figure.legend(fontsize=7, loc="outside lower left", frameon=False)
    if worst is not None:
        per_step = any(curve.name == worst.name for curve in report.generations)
        draw_histogram(panels.pop(0), worst, per_step)
    elif not curves:
        panels[0].set_axis_off()
        panels[0].text(0.5, 0.5, "no check compared values", ha="center", va="center")
    verdict = "PASSED" if report.passed else "FAILED"
    figure.suptitle(f"{verdict}: {report.bundle}", fontsize=10)
    return figure


def draw_generations(axes: Any, curves: list[StepErrors]) -> None:
    """Each generation's share of its tolerance used, step by step, against one limit at 1.

    Args:
        axes: the matplotlib axes to draw on.
        curves: the generations, each with ``used_per_step``.
    """
    values = [[min(v, 1e300) for v in curve.used_per_step] for curve in curves]
    positive = [v for row in values for v in row if v > 0]
    low = min(positive, default=1e-3) / 4
    high = max([*positive, 1.0]) * 4
    firsts = [next(j for j in range(i + 1) if values[j] == values[i]) for i in range(len(curves))]
    any_exact = False
    for i, (curve, row) in enumerate(zip(curves, values, strict=True)):
        group = [j for j in range(len(curves)) if firsts[j] == firsts[i]]
        layer = len(group) - 1 - group.index(i)  # the first of the same is drawn widest
        style = dict(
            color=COLOURS[i % len(COLOURS)],
            marker=MARKERS[i % len(MARKERS)],
            linestyle=LINE_STYLES[i % len(LINE_STYLES)],
            linewidth=1.2 + 2.0 * layer,
            markersize=4 + 3.0 * layer,
        )
        label = f"{i + 1}. {curve.name}: {_rule(curve)}"
        if firsts[i] != i:
            label += f" (the same values as {firsts[i] + 1})"
        drawn = [(t, v) for t, v in enumerate(row) if v > 0]
        exact = [t for t, v in enumerate(row) if v == 0]
        if not drawn:
            label += " (exact at every step)"
        line = axes.plot(
            [t for t, _ in drawn], [v for _, v in drawn], label=label, zorder=3 + i, **style
        )
        if exact:
            any_exact = True
            axes.plot(
                exact,
                [0.0] * len(exact),
                transform=axes.get_xaxis_transform(),
                linestyle="none",
                marker=style["marker"],
                markersize=style["markersize"] + 2,
                markerfacecolor="none",
                markeredgecolor=line[0].get_color(),
                clip_on=False,
                zorder=3 + i,
            )
    axes.axhline(1.0, color="black", linestyle=(0, (6, 3)), linewidth=1.5, label="limit")
    axes.set_yscale("log")
    axes.set_ylim(low, high)
    steps = max(len(row) for row in values)
    axes.set_xlim(-0.5, steps - 0.5)
    axes.set(
        title="Did each generation stay within its limit, step by step?",
        xlabel="generation step",
        ylabel="judged error / allowed error at that step",
    )
    if any_exact:
        axes.annotate(
            "hollow markers on this edge: steps without any error (exact)",
            xy=(0.01, 0.04),
            xycoords="axes fraction",
            fontsize=7,
        )
    axes.grid(True, which="major", alpha=0.3)


def draw_histogram(axes: Any, check: Check, per_step: bool = False) -> None:
    """How many elements of ``check`` used how much of their tolerance, against the limit at 1.

    Args:
        axes: the matplotlib axes to draw on.
        check: a check with ``used_histogram``.
        per_step: ``check`` is a generation's, each step judged by its own tolerance.
    """
    edges = USED_EDGES
    widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
    colours = ["#d62728" if a >= 1.0 else "#1f77b4" for a in edges[:-1]]
    counts = check.used_histogram or (0,) * (len(edges) - 1)
    bars = axes.bar(edges[:-1], counts, width=widths, align="edge", color=colours)
    for end in (bars[0], bars[-1]):  # the end bins hold everything beyond them
        end.set_hatch("///")
    axes.set_xscale("log")
    axes.set_xlim(edges[0], edges[-1])
    axes.axvline(1.0, color="black", linestyle=(0, (6, 3)), linewidth=1.5)
    axes.annotate(" limit", xy=(1.0, 0.97), xycoords=("data", "axes fraction"), fontsize=8)
    total = sum(counts) + check.exact_elements
    past = sum(c for c, a in zip(counts, edges[:-1], strict=True) if a >= 1.0)
    lines = [f"{total} elements, {past or 'none'} past the limit"]
    if check.exact_elements:
        lines.append(f"{check.exact_elements} without any error (not drawn)")
    axes.text(0.02, 0.97, "\n".join(lines), transform=axes.transAxes, va="top", fontsize=8)
    axes.set_ylim(0, max([*counts, 1]) * 1.25)
    axes.set_title(f"How much of its tolerance did each element use?\n{check.name}", fontsize=10)
    axes.set(
        xlabel=f"{_judged(check, per_step)}\n(shares below {edges[0]:g} and above "
        f"{edges[-1]:g} fall in the end bins)",
        ylabel="elements",
    )


def _rule(curve: StepErrors) -> str:
    """The rule that judged ``curve``, in the legend's words."""
    if curve.rule == "noise" and curve.noise_per_step and curve.allowed_per_step:
        factor = curve.allowed_per_step[0] / curve.noise_per_step[0]
        return f"noise rule, up to {factor:.3g} x the step's noise floor"
    growth = f" x (1 + {curve.growth:g} t)" if curve.growth else ""
    return f"allclose rule, (atol {curve.atol:.1e} + rtol {curve.rtol:.1e} |expected|){growth}"


def _judged(check: Check, per_step: bool) -> str:
    """What ``check``'s shares are shares of, in the panel's words."""
    if check.rule == "noise" and check.noise_floor is not None:
        floor = "the step's noise floor" if per_step else f"noise floor {check.noise_floor:.2e}"
        return f"judged error / ({check.limit:g} x {floor})"
    growth = " at the step" if per_step else ""
    return f"|error| / (atol {check.atol:.1e} + rtol {check.rtol:.1e} |expected|){growth}"


def _used(check: Check) -> float:
    """The largest share of its tolerance any element of ``check`` used."""
    if check.ratio is None or not check.limit:
        return math.inf
    return check.ratio / check.limit
