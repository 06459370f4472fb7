"""``parity train``: train one zoo model on its synthetic data and save it."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from parity.cli.commands import COMMANDS
from parity.cli.options import output_file_option, seed_option


@click.command("train", short_help=COMMANDS["train"])
@click.argument("name")
@output_file_option(
    "-o", "--output", required=True, help="Where to save the trained model (a .keras file)."
)
@click.option("--preset", default="tiny", show_default=True, help="Sizes to train (see `zoo`).")
@click.option("--epochs", type=int, default=None, help="Epochs to train [default: the preset's].")
@seed_option("Data and weights seed.")
def command(name: str, output: Path, preset: str, epochs: int | None, seed: int) -> None:
    """Train the zoo model NAME and save it to a .keras file.

    The same seed gives the same model. Prints the held-out score next to
    what chance would score.
    """
    from parity import models
    from parity.files import check_model_path, save_model

    epochs = models.training_epochs(models.get(name).preset(preset), epochs)
    check_model_path(output)
    click.echo(f"training {name}: {preset} preset, {epochs} epochs, seed {seed}", err=True)
    # One line per epoch where the output is not a terminal (logs, CI).
    verbose = 1 if sys.stdout.isatty() else 2
    result = models.train(name, preset=preset, epochs=epochs, seed=seed, verbose=verbose)
    save_model(result.model, output)
    score = result.metrics[result.metric]
    click.echo(f"held-out {result.metric}: {score:.4f} (chance: {result.chance:.4f})")
    click.echo(f"saved {output}")
