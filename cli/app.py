"""The ``parity`` command group.

Each command lives in its own module under :mod:`parity.cli.commands`,
imported only when that command runs; this module
assembles them and keeps the promise every command makes: bad input (a
:class:`runtime.errors.ParityError` from the library, or a usage error found
by click) exits 2 with one line ``error: ...`` on stderr, never a traceback.
"""

from __future__ import annotations

import sys

import click

from parity import __version__
from parity.cli import commands
from parity.cli.native_logs import quiet_tensorflow
from parity.runtime.errors import ParameterError, ParityError

# What str.splitlines() breaks a line at: each is written escaped, so that a
# message naming a file with one of them in its name stays one line.
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


class BadInput(click.ClickException):
    """Bad input, shown as one line ``error: MESSAGE`` on stderr; exit status 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.message.strip().translate(_LINE_BREAKS)}", err=True)


def flag(parameter: click.Parameter) -> str:
    """How the user names ``parameter``: an option's longest flag, an argument's metavar."""
    if isinstance(parameter, click.Option):
        return max(parameter.opts, key=len)
    return parameter.human_readable_name


def bad_input(exc: Exception, command: click.Command | None) -> BadInput:
    """The one-line error for a library error or a click usage error, naming
    a parameter by the flag of ``command`` that sets it."""
    named = isinstance(exc, click.BadParameter) and exc.param is not None
    if named and not isinstance(exc, click.MissingParameter):
        return BadInput(f"{flag(exc.param)}: {exc.message}")
    if isinstance(exc, click.UsageError):
        return BadInput(exc.format_message())
    if isinstance(exc, ParameterError) and command is not None:
        for parameter in command.params:
            if parameter.name == exc.parameter:
                return BadInput(f"{flag(parameter)}: {exc.reason}")
    return BadInput(str(exc))


class _Group(click.Group):
    """The commands of :data:`parity.cli.commands.COMMANDS`, each loaded when
    it runs or its own ``--help`` is asked for; the group's ``--help`` lists
    them from the table."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(commands.COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return commands.load(name) if name in commands.COMMANDS else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl(list(commands.COMMANDS.items()))

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise bad_input(exc, self) from exc

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except (click.UsageError, ParityError) as exc:
            name = ctx.invoked_subcommand
            command = self.get_command(ctx, name) if name else None
            raise bad_input(exc, command) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--verbose",
    is_flag=True,
    help="Show TensorFlow's native log lines (oneDNN, CUDA, absl), hidden by default.",
)
@click.version_option(__version__, prog_name="parity")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Export recurrent Keras models to ONNX and prove that ONNX Runtime
    computes what TensorFlow computes."""
    if not verbose:
        ctx.call_on_close(quiet_tensorflow())


def main() -> None:
    cli.main(prog_name="parity")


if __name__ == "__main__":
    sys.exit(main())
