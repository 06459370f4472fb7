"""``parity zoo``: list the models that ``parity train`` can train.

Reads the zoo's plain tables only, so it answers without importing TensorFlow.
"""

from __future__ import annotations

import click

from parity.cli.commands import COMMANDS


@click.command("zoo", short_help=COMMANDS["zoo"])
def command() -> None:
    """List the zoo: each model, its presets and what it is."""
    from parity import models

    entries = [models.get(name) for name in models.names()]
    width = max(len(entry.name) for entry in entries)
    for entry in entries:
        click.echo(f"{entry.name.ljust(width)}  {entry.description}")
        for preset in entry.presets.values():
            sizes = " ".join(f"{key}={value}" for key, value in preset.dims.items())
            click.echo(f"{'':{width}}    {preset.name}: {sizes}, {preset.epochs} epochs")
