"""The ``parity`` command group.

Each command lives in its own module under :mod:`parity.commands`; this module
only assembles them and turns :class:`runtime.errors.ParityError` into a
one-line message and exit status 2.
"""

from __future__ import annotations

import os
import sys

import click

from parity import __version__
from parity.commands import COMMANDS
from parity.runtime.errors import ParityError

# TensorFlow's C++ start-up chatter hides parity's own output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ParityError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="parity")
def cli() -> None:
    """Export recurrent Keras models to ONNX and prove that ONNX Runtime
    computes what TensorFlow computes."""


for _command in COMMANDS:
    cli.add_command(_command)


def main() -> None:
    cli.main(prog_name="parity")


if __name__ == "__main__":
    sys.exit(main())
