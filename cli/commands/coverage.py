"""``parity coverage``: regenerate the support matrix (COVERAGE.md)."""

from __future__ import annotations

from pathlib import Path

import click

from parity.cli.commands import COMMANDS
from parity.cli.options import output_file_option, progress_lines, quiet_option

COMMAND = "parity coverage -o COVERAGE.md"


@click.command("coverage", short_help=COMMANDS["coverage"])
@output_file_option(
    "-o",
    "--output",
    default=Path("COVERAGE.md"),
    show_default=True,
    help="Where to write the matrix (Markdown).",
)
@quiet_option()
def command(output: Path, quiet: bool) -> None:
    """Export and verify every recurrent layer configuration of the matrix,
    every model form and every streaming configuration.

    Each case is said on stderr as it starts, with the time left. Exits 1
    when a configuration that exports fails verification.
    """
    from parity.cli.support_matrix import write_matrix

    rows = write_matrix(output, COMMAND, progress=progress_lines(quiet))
    failed = [row for row in rows if row.result == "FAILS"]
    click.echo(f"{len(rows)} configurations, {len(failed)} failing -> {output}")
    raise SystemExit(1 if failed else 0)
