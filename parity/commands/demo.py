"""``parity demo``: the whole product on the tiny zoo in one command.

Trains every zoo model on its tiny preset, exports each to a bundle, verifies
each bundle against TensorFlow, and prints one summary table.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click


@click.command("demo")
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to keep the models and bundles (default: a temporary folder).",
)
@click.option("--preset", default="tiny", show_default=True, help="Zoo preset to train.")
@click.option("--seed", type=int, default=0, show_default=True, help="Training and input seed.")
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "gpu"]),
    default="auto",
    show_default=True,
    help="Where verification runs.",
)
@click.option("--only", "names", multiple=True, help="Only these zoo models (repeatable).")
def command(out_dir, preset, seed, device, names) -> None:  # fmt: skip
    """Train the tiny zoo, export, verify, and print the summary table.

    Exits 0 when every bundle passes verification, 1 otherwise.
    """
    from parity import models
    from parity.exporter import export_keras
    from parity.verify.check import check

    chosen = list(names) or models.names()
    for name in chosen:
        models.get(name)  # an unknown name fails here, before any training
    if out_dir is None:
        out_dir = Path(tempfile.mkdtemp(prefix="parity-demo-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in chosen:
        started = time.perf_counter()
        click.echo(f"== {name}: training ({preset})", err=True)
        result = models.train(name, preset=preset, seed=seed, verbose=0)
        source = out_dir / f"{name}.keras"
        models.save(result.model, source)
        click.echo(f"== {name}: exporting", err=True)
        export_keras(source, out_dir / name, seed=seed)
        click.echo(f"== {name}: verifying", err=True)
        report = check(out_dir / name, source, device=device, seed=seed)
        rows.append(
            (
                name,
                _metric(result.metrics),
                f"{len(report.checks) - len(report.failures)}/{len(report.checks)}",
                f"{max(c.max_abs for c in report.checks):.1e}",
                "PASS" if report.passed else "FAIL",
                f"{time.perf_counter() - started:.0f}s",
            )
        )
        if not report.passed:
            click.echo(report.table(), err=True)
    header = ("model", "held-out", "checks", "max abs err", "result", "time")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    failed = sum(row[4] == "FAIL" for row in rows)
    click.echo(f"bundles in {out_dir}")
    click.echo("PASSED: every bundle verified" if not failed else f"FAILED: {failed} bundle(s)")
    raise SystemExit(1 if failed else 0)


def _metric(metrics: dict) -> str:
    for key in ("accuracy", "acc", "loss", "mse"):
        if key in metrics:
            return f"{key} {metrics[key]:.3f}"
    return ""
