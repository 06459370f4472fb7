"""``parity demo``: the whole product on the tiny zoo in one command.

Trains every zoo model on its tiny preset, exports each to a bundle, verifies
each bundle against TensorFlow, and prints one summary table
(:mod:`parity.cli.zoo_demo`).
"""

from __future__ import annotations

from pathlib import Path

import click

from parity.cli.commands import COMMANDS
from parity.cli.options import (
    device_option,
    only_option,
    progress_lines,
    quiet_option,
    seed_option,
)


@click.command("demo", short_help=COMMANDS["demo"])
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("parity-demo"),
    show_default=True,
    help="Where to keep the models (NAME.keras) and bundles (NAME/).",
)
@click.option("--preset", default="tiny", show_default=True, help="Zoo preset to train.")
@seed_option("Training and input seed.")
@device_option("Where verification runs.")
@only_option()
@quiet_option()
def command(out_dir, preset, seed, device, names, quiet) -> None:  # fmt: skip
    """Train the tiny zoo, export, verify, and print the summary table.

    Each epoch and stage is said on stderr as it ends or starts. Exits 0
    when every bundle passes verification, 1 otherwise.
    """
    from parity.cli.zoo_demo import demo_table, run_demo

    result = run_demo(
        out_dir,
        names=names,
        preset=preset,
        seed=seed,
        device=device,
        progress=progress_lines(quiet),
    )
    for row in result.failed:
        click.echo(row.report.table(), err=True)
    click.echo(demo_table(result.rows))
    click.echo(f"bundles in {result.folder}")
    failed = len(result.failed)
    click.echo("PASSED: every bundle verified" if not failed else f"FAILED: {failed} bundle(s)")
    raise SystemExit(1 if failed else 0)
