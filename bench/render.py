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

from parity.bench.result import BenchResult, Row, best_tensorflow, versus_tensorflow
from parity.files import replacing

SCHEMA = "parity-bench/2"
HEADER = (
    "model",
    "batch",
    "device",
    "method",
    "median",
    "min",
    "max",
    "GFLOP/s",
    "x floor",
    "x best TF",
)


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


def table(result: BenchResult) -> str:
    """The rows, the floor and the machine, as plain text for a terminal."""
    machine = result.machine
    versions = ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items())
    gpu = machine.get("gpu", {})
    lines = [
        f"parity bench, preset {result.settings.preset}, {result.date}",
        f"machine: {machine.get('cpu')}, {machine.get('cores')} cores, "
        f"{machine.get('memory_gib')} GiB, {machine.get('os')}, Python {machine.get('python')}",
        f"load average at the start: {machine.get('load_average')}",
        f"versions: {versions}",
        "gpu: " + "; ".join(f"{k}: {v}" for k, v in gpu.items()),
        f"timing: median (min, max) of {result.settings.repeats} call(s) after "
        f"{result.settings.warmup} warm-up call(s)",
        "",
    ]
    peak = result.peak
    best = best_tensorflow(result.rows)
    cells = [HEADER]
    notes = []
    for row in result.rows:
        cells.append(_cells(row, peak, best))
        notes.append(row.note)
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]
    for index, line in enumerate(cells):
        text = "  ".join(
            cell.ljust(w) if i < 4 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        note = notes[index - 1] if index else "note"
        lines.append(f"{text}  {note}".rstrip())
    lines += ["", f"floor: numpy float32 GEMM, peak {peak:.1f} GFLOP/s"]
    for gemm in result.floor:
        lines.append(
            f"  {gemm.label:<34} {_seconds(gemm.timing.median):>9}  {gemm.gflops:7.1f} GFLOP/s"
        )
    return "\n".join(lines)


def plot(result: BenchResult, path: Path) -> None:
    """Horizontal bars: the median of each timed row, grouped by model, batch
    and device, coloured by method, on a log axis (batch 1 and the large batch
    differ by 100x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [row for row in result.rows if row.timing is not None]
    methods = list(dict.fromkeys(row.method for row in timed))
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    positions, labels, ticks = [], [], []
    y, last = 0.0, None
    for row in timed:
        group = (row.model, row.batch, row.device)
        if group != last:
            y += 0.6 if last is not None else 0.0
            ticks.append(y)
            labels.append(f"{row.model}, batch {row.batch} ({row.device})")
            last = group
        positions.append(y)
        y += 1.0
    figure, axes = plt.subplots(figsize=(10, 1.5 + 0.28 * max(len(timed), 1)))
    axes.barh(
        positions,
        [row.timing.median * 1e3 for row in timed],
        color=[colours[row.method] for row in timed],
    )
    axes.set_yticks(ticks, labels, fontsize=7)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("median milliseconds per call (log)")
    axes.set_title(f"parity bench, preset {result.settings.preset}, {result.machine.get('cpu')}")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[m]) for m in methods]
    axes.legend(handles, methods, fontsize=7, loc="lower right")
    figure.tight_layout()
    try:
        with replacing(path) as stream:
            figure.savefig(stream, format="png", dpi=110)
    finally:
        plt.close(figure)


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
    batch = "-" if row.batch is None else str(row.batch)
    if row.timing is None:
        return (row.model, batch, row.device, row.method, "skipped", "", "", "", "", "")
    gflops = row.gflops
    multiple = row.floor_multiple(peak)
    versus = versus_tensorflow(row, best)
    return (
        row.model,
        batch,
        row.device,
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
