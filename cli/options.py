"""The options that several commands share, built from the library's constants.

Each function returns a click decorator, so that a command lists its options
in one line each and every command spells, checks and documents an option the
same way. Output files are checked when the command line is parsed, before
any work: a folder, a missing folder or a folder that cannot be written to is
a usage error, and nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from parity.exporter.opsets import DEFAULT_OPSET, SUPPORTED_OPSETS
from parity.runtime.progress import Progress
from parity.runtime.providers import DEVICES

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

# keras.utils.set_random_seed seeds numpy's legacy generator, which takes 0 to 2**32 - 1.
SEEDS = click.IntRange(0, 2**32 - 1)


def device_option(help: str) -> Decorator:
    """``--device`` (auto, cpu or gpu; default auto). ``help`` says what runs there."""
    return click.option(
        "--device", type=click.Choice(DEVICES), default="auto", show_default=True, help=help
    )


def opset_option() -> Decorator:
    """``--opset``: the ONNX opset. The exporter refuses one outside its range
    before it loads the model, in its own words."""
    first, last = SUPPORTED_OPSETS.start, SUPPORTED_OPSETS.stop - 1
    return click.option(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        show_default=True,
        help=f"ONNX opset ({first} to {last}).",
    )


def seed_option(help: str) -> Decorator:
    """``--seed`` (default 0). ``help`` says what the seed draws."""
    return click.option("--seed", type=SEEDS, default=0, show_default=True, help=help)


def unsafe_option() -> Decorator:
    """``--unsafe``: allow a Keras model whose loading runs code (Lambda layers)."""
    return click.option(
        "--unsafe", is_flag=True, help="Allow a Keras model that needs unsafe loading (Lambda)."
    )


def custom_objects_option() -> Decorator:
    """``--custom-objects FILE.py``: the Python file that defines a model's
    custom layers and functions (trusted code, run to load the model)."""
    return click.option(
        "--custom-objects",
        type=click.Path(path_type=Path),
        default=None,
        help="A Python file defining the model's custom layers or functions. It is run: "
        "only for files you trust.",
    )


def quiet_option() -> Decorator:
    """``-q``/``--quiet``: no progress lines (see :func:`progress_lines`)."""
    return click.option("-q", "--quiet", is_flag=True, help="No progress lines.")


def progress_lines(quiet: bool) -> Progress:
    """Where a command's progress goes: one line per event on stderr,
    ``... `` first (stdout keeps the result; a line break in a file's name
    is written escaped), or nowhere with ``--quiet``.

    Args:
        quiet: the command's ``--quiet``.
    """
    from parity.cli.app import LINE_BREAKS

    if quiet:
        return lambda line: None
    return lambda line: click.echo(f"... {line.translate(LINE_BREAKS)}", err=True)


def only_option() -> Decorator:
    """``--only NAME`` (repeatable): a subset of the zoo, passed as ``names``."""
    return click.option(
        "--only", "names", multiple=True, help="Only these zoo models (repeatable)."
    )


def output_file_option(*declarations: str, help: str, **settings: Any) -> Decorator:
    """An option naming a file the command writes (``--json``, ``--plot``, ``-o``),
    given as a :class:`pathlib.Path` and checked as it is parsed (see
    :func:`check_output_file`). ``declarations`` and ``settings`` are
    :func:`click.option`'s (``required``, ``default``, ``show_default``)."""
    return click.option(
        *declarations,
        type=click.Path(path_type=Path),
        callback=_checked_output,
        help=help,
        **settings,
    )


def json_option(help: str) -> Decorator:
    """``--json FILE``, passed as ``json_path``."""
    return output_file_option("--json", "json_path", help=help)


def plot_option(help: str) -> Decorator:
    """``--plot FILE`` (PNG), passed as ``plot_path``."""
    return output_file_option("--plot", "plot_path", help=help)


def check_outputs_apart(outputs: dict[str, Path | None], inputs: list[Path | None]) -> None:
    """Refuse an output file that is one of the command's inputs (``--json
    model.keras`` would replace the model), or that lies in an input folder
    (a dataset, which the next run would read it from), before any work.

    Args:
        outputs: each output option's flag and its path (None: not given).
        inputs: the files and folders the command reads (None: not given).

    Raises:
        click.UsageError: naming the flag.
    """
    read = [Path(path) for path in inputs if path is not None and os.path.exists(path)]
    for flag, output in outputs.items():
        if output is None or not os.path.exists(output):
            continue
        for path in read:
            if os.path.samefile(output, path):
                raise click.UsageError(
                    f"{flag} {output}: is also an input of this command; write it elsewhere"
                )
    for flag, output in outputs.items():
        folders = [path.resolve() for path in read if path.is_dir()]
        if output is not None and any(f in output.resolve().parents for f in folders):
            raise click.UsageError(
                f"{flag} {output}: is inside a folder this command reads; write it elsewhere"
            )


def check_output_file(path: Path) -> Path:
    """``path`` if parity may write it (:func:`parity.files.check_target`'s
    rule). Raises :class:`click.BadParameter`."""
    from parity.files import check_target
    from parity.runtime.errors import ParityError

    try:
        return check_target(path).path
    except ParityError as exc:
        raise click.BadParameter(str(exc)) from None


def _checked_output(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    return None if value is None else check_output_file(value)
