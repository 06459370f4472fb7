"""A benchmark result as a table, as JSON and as a bar chart.

JSON schema (``schema`` = "parity-bench/2")::

    {
      "schema": "parity-bench/2",
      "date": str,                  # ISO 8601, UTC
      "command": str,               # the command line that repeats the run
      "settings": {"preset": str, "batches": [int] | null, "repeats": int,
                   "warmup": int, "device": "auto|cpu|gpu", "only": [str]},
      "machine": {"cpu": str, "cores": int, "usable_cores": int | null,
                  "memory_gib": float, "os": str, "python": str,
                  "load_average": [float, float, float] | null,   # at the start
                  "versions": {package: version},
                  "gpu": {"onnxruntime": "usable" | reason,
                          "tensorflow": "usable" | reason}},
      "floor": {"peak_gflops": float,          # the best GEMM rate below
                "gemms": [{"m", "k", "n", "flops", "median_s", "min_s",
                           "max_s", "repeats", "gflops"}]},
      "rows": [{"model": str, "batch": int | null, "device": "cpu|gpu",
                "method": str, "skipped": bool, "note": str,
                "flops": int | null,           # work of one call
                "median_s", "min_s", "max_s": float | null, "repeats": int | null,
                "gflops": float | null,        # flops / median
                "floor_s": float | null,       # flops at the peak GEMM rate
                "floor_multiple": float | null,    # median / floor_s
                "vs_best_tensorflow": float | null}]
                # median / the best median among keras, tf.* and litert rows
                # of the same model, batch and device (below 1: faster)
    }

A skipped row has null timings and says why in ``note``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from parity.bench.cases import SEQ2SEQ_METHODS, SINGLE_METHODS
from parity.bench.fusion import ORT_FUSED, ORT_GENERAL
from parity.bench.result import BenchResult, Row, best_tensorflow, versus_tensorflow
from parity.files import replacing
from parity.verify.terminal import paragraphs, text_width

SCHEMA = "parity-bench/2"
# Every method, in the order that gives each its colour and marker in the plot.
METHODS = (*SINGLE_METHODS, *SEQ2SEQ_METHODS, ORT_FUSED, ORT_GENERAL)
HEADER = ("method", "median", "min", "max", "GFLOP/s", "x floor", "x best TF")


def to_dict(result: BenchResult) -> dict[str, Any]:
    peak = result.peak
    settings = result.settings
    best = best_tensorflow(result.rows)
    return {
        "schema": SCHEMA,
        "date": result.date,
        "command": settings.command(),
        "settings": {
            "preset": settings.preset,
            "batches": list(settings.batches) if settings.batches else None,
            "repeats": settings.repeats,
            "warmup": settings.warmup,
            "device": settings.device,
            "only": list(settings.only),
        },
        "machine": result.machine,
        "floor": {
            "peak_gflops": peak,
            "gemms": [
                {
                    "m": g.m,
                    "k": g.k,
                    "n": g.n,
                    "flops": g.flops,
                    **_timing(g.timing),
                    "gflops": g.gflops,
                }
                for g in result.floor
            ],
        },
        "rows": [_row(row, peak, best) for row in result.rows],
    }


def write_json(result: BenchResult, path: Path) -> None:
    """Write the JSON record atomically (schema above)."""
    with replacing(path) as stream:
        stream.write((json.dumps(to_dict(result), indent=2) + "\n").encode("utf-8"))


def table(result: BenchResult, width: int | None = None) -> str:
    """The rows, the floor and the machine, as plain text for a terminal: a
    heading line per model, batch and device, then one line per method, its
    note below it; every line at most ``width`` characters (the terminal's,
    up to :data:`parity.verify.terminal.MAX_WIDTH`, when None). Every number is
    also in the JSON record (:func:`to_dict`).

    Args:
        result: the benchmark's result.
        width: the widest line; None: :func:`parity.verify.terminal.text_width`.
    """
    width = text_width() if width is None else width
    machine = result.machine
    versions = ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items())
    gpu = machine.get("gpu", {})
    lines = paragraphs(
        [
            f"parity bench, preset {result.settings.preset}, {result.date}",
            f"machine: {machine.get('cpu')}, {machine.get('cores')} cores, "
            f"{machine.get('memory_gib')} GiB, {machine.get('os')}, Python {machine.get('python')}",
            f"load average at the start: {machine.get('load_average')}",
            f"versions: {versions}",
            "gpu: " + "; ".join(f"{k}: {v}" for k, v in gpu.items()),
            f"timing: median (min, max) of {result.settings.repeats} call(s) after "
            f"{result.settings.warmup} warm-up call(s); x floor: median / the time the row's "
            "work takes at the GEMM floor's peak rate; x best TF: median / the fastest "
            "TensorFlow way's median (keras, tf.*, litert) at that model, batch and device",
        ],
        width,
    )
    lines.append("")
    peak = result.peak
    best = best_tensorflow(result.rows)
    cells = [HEADER, *(_cells(row, peak, best) for row in result.rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]
    widths[0] += 2

    def aligned(line: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()

    lines.append(aligned(HEADER))
    last = None
    for row, line in zip(result.rows, cells[1:], strict=True):
        group = (row.model, row.batch, row.device)
        if group != last:
            batch = "every batch" if row.batch is None else f"batch {row.batch}"
            lines.append(f"{row.model}, {batch}, {row.device}")
            last = group
        if row.timing is None:
            lines += paragraphs([f"  {row.method}: skipped: {row.note}"], width)
            continue
        lines.append(aligned(("  " + line[0], *line[1:])))
        if row.note:
            lines += paragraphs([f"    note: {row.note}"], width)
    lines += ["", f"floor: numpy float32 GEMM, peak {peak:.1f} GFLOP/s"]
    for gemm in result.floor:
        lines.append(
            f"  {gemm.label:<34} {_seconds(gemm.timing.median):>9}  {gemm.gflops:7.1f} GFLOP/s"
        )
    return "\n".join(lines)


def plot(result: BenchResult, path: Path) -> None:
    """One question: how long does each way take per call? One band per model,
    batch and device; in it, each timed method's median as a marker with a
    whisker from the fastest to the slowest call, on a log axis (batch 1 and
    the large batch differ by 100x). Each method keeps its colour and marker
    (:data:`METHODS`' order) in every plot; skipped rows are in the table only.

    Args:
        result: the benchmark's result.
        path: the PNG file to write or replace, atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from parity.verify.plot import COLOURS, MARKERS

    timed = [row for row in result.rows if row.timing is not None]
    bands: list[list[Row]] = []  # rows of one model, batch and device, as they come
    for row in timed:
        if bands and _group(bands[-1][0]) == _group(row):
            bands[-1].append(row)
        else:
            bands.append([row])
    methods = list(dict.fromkeys([*METHODS, *(row.method for row in timed)]))
    shown = [m for m in methods if any(row.method == m for row in timed)]
    per_band = max([0.5, *(0.07 * len(band) for band in bands)])
    height = max(1.4 + per_band * len(bands), 1.0 + 0.22 * len(shown))
    figure, axes = plt.subplots(figsize=(11, height), layout="constrained")
    for y, band in enumerate(bands):
        for k, row in enumerate(band):
            offset = (k - (len(band) - 1) / 2) * 0.8 / max(len(band), 1)
            index = methods.index(row.method)
            median = row.timing.median * 1e3
            axes.errorbar(
                median,
                y + offset,
                xerr=[[median - row.timing.min * 1e3], [row.timing.max * 1e3 - median]],
                color=COLOURS[index % len(COLOURS)],
                marker=MARKERS[index % len(MARKERS)],
                markersize=6,
                elinewidth=1,
                capsize=2,
                linestyle="none",
            )
        if y:
            axes.axhline(y - 0.5, color="#cccccc", linewidth=0.8)
    several_devices = len({row.device for row in timed}) > 1
    labels = [
        f"{band[0].model}, batch {band[0].batch}" + (f", {band[0].device}" * several_devices)
        for band in bands
    ]
    axes.set_yticks(range(len(bands)), labels, fontsize=8)
    axes.set_ylim(len(bands) - 0.5, -0.5)
    axes.set_xscale("log")
    axes.grid(True, axis="x", which="major", alpha=0.3)
    axes.set_xlabel("milliseconds per call: median, whiskers from the fastest to the slowest call")
    axes.set_title(
        f"How long does each way take per call? parity bench, preset {result.settings.preset}, "
        f"{result.machine.get('cpu')}, {result.settings.repeats} timed calls",
        fontsize=10,
    )
    handles = [
        plt.Line2D(
            [],
            [],
            color=COLOURS[methods.index(m) % len(COLOURS)],
            marker=MARKERS[methods.index(m) % len(MARKERS)],
            linestyle="none",
        )
        for m in shown
    ]
    figure.legend(handles, shown, fontsize=8, loc="outside right upper", frameon=False)
    try:
        with replacing(path) as stream:
            figure.savefig(stream, format="png", dpi=100)
    finally:
        plt.close(figure)


def _group(row: Row) -> tuple:
    return (row.model, row.batch, row.device)


def _row(row: Row, peak: float, best: dict) -> dict[str, Any]:
    return {
        "model": row.model,
        "batch": row.batch,
        "device": row.device,
        "method": row.method,
        "skipped": row.skipped,
        "note": row.note,
        "flops": row.flops,
        **_timing(row.timing),
        "gflops": row.gflops,
        "floor_s": row.floor_seconds(peak),
        "floor_multiple": row.floor_multiple(peak),
        "vs_best_tensorflow": versus_tensorflow(row, best),
    }


def _timing(timing: Any) -> dict[str, Any]:
    if timing is None:
        return {"median_s": None, "min_s": None, "max_s": None, "repeats": None}
    return {
        "median_s": timing.median,
        "min_s": timing.min,
        "max_s": timing.max,
        "repeats": timing.repeats,
    }


def _cells(row: Row, peak: float, best: dict) -> tuple[str, ...]:
    if row.timing is None:
        return (row.method, "", "", "", "", "", "")
    gflops = row.gflops
    multiple = row.floor_multiple(peak)
    versus = versus_tensorflow(row, best)
    return (
        row.method,
        _seconds(row.timing.median),
        _seconds(row.timing.min),
        _seconds(row.timing.max),
        "" if gflops is None else f"{gflops:.2f}",
        "" if multiple is None else f"{multiple:.1f}",
        "" if versus is None else f"{versus:.2f}",
    )


def _seconds(value: float) -> str:
    if value < 1e-3:
        return f"{value * 1e6:.0f} us"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"
