"""``parity train``: train one zoo model on its synthetic data and save it."""

from __future__ import annotations

from pathlib import Path

import click

from parity.cli.commands import COMMANDS
from parity.cli.options import output_file_option, progress_lines, quiet_option, seed_option


@click.command("train", short_help=COMMANDS["train"])
@click.argument("name")
@output_file_option(
    "-o", "--output", required=True, help="Where to save the trained model (a .keras file)."
)
@click.option("--preset", default="tiny", show_default=True, help="Sizes to train (see `zoo`).")
@click.option("--epochs", type=int, default=None, help="Epochs to train [default: the preset's].")
@seed_option("Data and weights seed.")
@quiet_option()
def command(
    name: str, output: Path, preset: str, epochs: int | None, seed: int, quiet: bool
) -> None:
    """Train the zoo model NAME and save it to a .keras file.

    The same seed gives the same model. Prints the held-out score next to
    what chance would score; each epoch's scores and the time left go to stderr.
    """
    from parity import models
    from parity.files import check_model_path, save_model

    epochs = models.training_epochs(models.get(name).preset(preset), epochs)
    check_model_path(output)
    progress = progress_lines(quiet)
    progress(f"training {name}: {preset} preset, {epochs} epochs, seed {seed}")
    result = models.train(name, preset=preset, epochs=epochs, seed=seed, progress=progress)
    save_model(result.model, output)
    score = result.metrics[result.metric]
    click.echo(f"held-out {result.metric}: {score:.4f} (chance: {result.chance:.4f})")
    click.echo(f"saved {output}")
