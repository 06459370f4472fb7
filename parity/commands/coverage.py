"""``parity coverage``: regenerate the support matrix (COVERAGE.md)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

COMMAND = "parity coverage -o COVERAGE.md"


@click.command("coverage")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("COVERAGE.md"),
    show_default=True,
    help="Where to write the matrix (Markdown).",
)
def command(output: Path) -> None:
    """Export and verify every recurrent layer configuration of the matrix.

    Exits 1 when a configuration that exports fails verification.
    """
    from parity.runtime.errors import ParityError
    from parity.verify.coverage import cases, run_case, to_markdown

    if not output.resolve().parent.is_dir():
        raise ParityError(f"{output}: its folder does not exist")
    rows = []
    with tempfile.TemporaryDirectory(prefix="parity-coverage-") as folder:
        for case in cases():
            click.echo(f"... {case.name}", err=True)
            rows.append(run_case(case, Path(folder)))
    text = to_markdown(rows, COMMAND)
    temporary = output.with_name(f".{output.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(output)
    failed = [row for row in rows if row.result == "FAILS"]
    click.echo(f"{len(rows)} configurations, {len(failed)} failing -> {output}")
    raise SystemExit(1 if failed else 0)
