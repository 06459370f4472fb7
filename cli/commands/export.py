"""``parity export``: a saved Keras model to a bundle (ONNX graphs, manifest, golden data)."""

from __future__ import annotations

from pathlib import Path

import click

from parity.cli.commands import COMMANDS
from parity.cli.options import (
    custom_objects_option,
    opset_option,
    progress_lines,
    quiet_option,
    seed_option,
    unsafe_option,
)


@click.command("export", short_help=COMMANDS["export"])
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@opset_option()
@click.option(
    "--dynamic-batch/--no-dynamic-batch",
    default=True,
    show_default=True,
    help="Keep the batch axis dynamic, or fix it to 1.",
)
@click.option(
    "--seq2seq/--no-seq2seq",
    default=None,
    help="Export as encoder + one-step decoder [default: detected].",
)
@click.option("--steps", type=int, default=None, help="Seq2seq horizon to record.")
@seed_option("Seed of the golden inputs.")
@click.option(
    "--fuse/--no-fuse",
    default=True,
    show_default=True,
    help="Write recurrent layers as ONNX's fused ops where the model's form allows "
    "(masked: one layer, post-padding only), or keep tf2onnx's general graph.",
)
@click.option(
    "--streaming",
    is_flag=True,
    help="Export a forward recurrent model as a stream: every recurrent state a graph input "
    "and output, the sequence fed in chunks (a model whose recurrent layers are stateful is "
    "exported so without it).",
)
@unsafe_option()
@custom_objects_option()
@quiet_option()
def command(src, out_dir, opset, dynamic_batch, seq2seq, steps, seed, fuse, streaming, unsafe,
            custom_objects, quiet) -> None:  # fmt: skip
    """Export the Keras model SRC (.keras) to the bundle folder OUT_DIR.

    The bundle is written to a temporary folder and renamed into place: a
    failed export leaves an existing bundle at OUT_DIR as it was. Each stage
    is said on stderr as it starts.
    """
    from parity.exporter import export_keras

    manifest = export_keras(
        src,
        out_dir,
        opset=opset,
        dynamic_batch=dynamic_batch,
        unsafe=unsafe,
        seq2seq=seq2seq,
        steps=steps,
        seed=seed,
        fuse=fuse,
        custom_objects=custom_objects,
        streaming=streaming,
        progress=progress_lines(quiet),
    )
    click.echo(f"exported {manifest.name} ({manifest.kind}, opset {manifest.opset}) -> {out_dir}")
    for graph in manifest.graphs.values():
        click.echo(f"  {graph.file}")
        for direction, specs in (("in ", graph.inputs), ("out", graph.outputs)):
            for spec in specs:
                shape = ", ".join(str(d) for d in spec.shape)
                click.echo(f"    {direction} {spec.name}: {spec.dtype} ({shape})")
    if manifest.mask:
        mask = manifest.mask
        click.echo(f"  mask: input {mask.input!r}, value {mask.value} ({mask.source})")
    if manifest.seq2seq:
        spec = manifest.seq2seq
        click.echo(
            f"  seq2seq: {len(spec.states)} states, feedback {spec.feedback}, "
            f"start {spec.start}, horizon {spec.steps}"
        )
    if manifest.streaming:
        spec = manifest.streaming
        states = ", ".join(f"{state.input} ({state.size})" for state in spec.states)
        click.echo(f"  stream ({spec.source}): states {states}")
    for note in manifest.notes:
        click.echo(f"  note: {note}")
