"""``parity bench``: TensorFlow and ONNX Runtime on the zoo, side by side, against
the machine's GEMM floor. What is timed is :mod:`bench.cases`; the JSON schema
is in :mod:`bench.report`."""

from __future__ import annotations

import click

from parity.bench.run import PRESETS, run_bench
from parity.cli.commands import COMMANDS
from parity.cli.options import (
    device_option,
    json_option,
    only_option,
    plot_option,
    progress_lines,
    quiet_option,
)


@click.command("bench", short_help=COMMANDS["bench"])
@click.option(
    "--preset",
    type=click.Choice(PRESETS),
    default="seed",
    show_default=True,
    help="Zoo preset: the model sizes to time.",
)
@only_option()
@click.option(
    "--batch",
    "batches",
    type=click.IntRange(min=1),
    multiple=True,
    help="Batch sizes (repeatable) [default: 1 and 256 (seq2seq: 470); tiny: 1 and 32].",
)
@click.option(
    "--repeats", type=click.IntRange(min=1), default=5, show_default=True, help="Timed calls."
)
@click.option(
    "--warmup",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Untimed calls before them (after the first call, which traces).",
)
@json_option("Write the result as JSON.")
@plot_option("Write a bar chart (PNG).")
@device_option("auto: CPU, and a GPU where there is one.")
@quiet_option()
def command(preset, names, batches, repeats, warmup, json_path, plot_path, device, quiet) -> None:
    """Time Keras, tf.function, XLA, LiteRT and ONNX Runtime on every zoo model (untrained,
    exported to a temporary folder) and the seq2seq generation loops, with
    achieved GFLOP/s and the multiple of the time numpy's GEMM rate implies."""
    from parity.bench.render import plot, table, write_json
    from parity.bench.result import Settings

    settings = Settings(
        preset=preset,
        batches=tuple(batches) or None,
        repeats=repeats,
        warmup=warmup,
        device=device,
        only=tuple(names),
    )
    result = run_bench(settings, progress=progress_lines(quiet))
    click.echo(table(result))
    if json_path is not None:
        write_json(result, json_path)
    if plot_path is not None:
        plot(result, plot_path)
