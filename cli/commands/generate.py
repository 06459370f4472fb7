"""``parity generate``: free-running generation from a seq2seq bundle with ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import click

from parity.cli.commands import COMMANDS
from parity.cli.options import check_outputs_apart, device_option, output_file_option


@click.command("generate", short_help=COMMANDS["generate"])
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option(
    "--input",
    "input_file",
    required=True,
    type=click.Path(path_type=Path),
    help="Encoder input: a .npy array (batch first), or an .npz with one array per input name.",
)
@click.option(
    "--start",
    "start_file",
    type=click.Path(path_type=Path),
    help="First step input (.npy) [default: the bundle's start rule].",
)
@click.option(
    "--steps", type=int, default=None, help="Steps to generate [default: the bundle's horizon]."
)
@click.option("--stop-token", type=int, default=None, help="End a row once it emits this token.")
@device_option("Where ONNX Runtime runs.")
@output_file_option(
    "-o",
    "--output",
    required=True,
    help="Where to write the generated steps (.npy, shape (batch, steps, ...)).",
)
def command(
    bundle: Path,
    input_file: Path,
    start_file: Path | None,
    steps: int | None,
    stop_token: int | None,
    device: str,
    output: Path,
) -> None:
    """Generate from the seq2seq bundle BUNDLE, without TensorFlow."""
    from parity import runtime
    from parity.files import save_array
    from parity.runtime.generate import check_steps
    from parity.runtime.npy import load_array, load_arrays

    check_outputs_apart({"--output": output}, [bundle, input_file, start_file])
    if steps is not None:
        check_steps(steps)
    loaded = runtime.load_bundle(bundle, device=device)
    if input_file.suffix == ".npz":
        encoder_inputs = load_arrays(input_file)
    else:
        encoder_inputs = load_array(input_file)
    start = load_array(start_file) if start_file else None
    result = runtime.generate(
        loaded, encoder_inputs, start=start, steps=steps, stop_token=stop_token
    )
    save_array(output, result)
    click.echo(f"generated {result.shape[1]} steps for {result.shape[0]} rows -> {output}")
