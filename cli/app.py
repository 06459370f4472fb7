"""The ``parity`` command group.

Each command lives in its own module under :mod:`parity.cli.commands`,
imported only when that command runs; this module
assembles them and keeps the promise every command makes: bad input (a
:class:`runtime.errors.ParityError` from the library, or a usage error found
by click) exits 2 with one line ``error: ...`` on stderr, never a traceback;
parity failing in itself exits 3, an interrupt 130, each with one line, so
that 0 and 1 keep meaning "the runtimes agree" and "they disagree".
"""

from __future__ import annotations

import sys
import traceback

import click

from parity import __version__
from parity.cli import commands
from parity.cli.native_logs import quiet_tensorflow
from parity.runtime.errors import ParameterError, ParityError, quoted

# What str.splitlines() breaks a line at: each is written escaped, so that a
# message naming a file with one of them in its name stays one line.
LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


# The exit statuses every command keeps (README, "Exit status").
EXIT_BAD_INPUT = 2
EXIT_CRASHED = 3
EXIT_INTERRUPTED = 130


class BadInput(click.ClickException):
    """Bad input, shown as one line ``error: MESSAGE`` on stderr; exit status 2."""

    exit_code = EXIT_BAD_INPUT

    def show(self, file=None) -> None:
        click.echo(f"error: {self.message.strip().translate(LINE_BREAKS)}", err=True)


class Crashed(BadInput):
    """parity itself failed (a bug, or a library failing where it should not):
    one line, exit status 3, never 0 or 1, which say whether the runtimes agree.
    ``--verbose`` shows the traceback first."""

    exit_code = EXIT_CRASHED


class Interrupted(BadInput):
    """The run was interrupted (Ctrl-C): exit status 130, as shells report a
    process stopped by SIGINT; never 1, which says the runtimes disagree."""

    exit_code = EXIT_INTERRUPTED


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
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            raise Interrupted("interrupted; nothing was judged") from None
        except Exception as exc:
            if ctx.params.get("verbose"):
                traceback.print_exc()
            where = "" if ctx.params.get("verbose") else " (--verbose shows the traceback)"
            raise Crashed(
                f"parity failed: {type(exc).__name__}: {quoted(exc)}{where}; this is not a "
                "verdict on the model"
            ) from exc


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
    """The ``parity`` program: click's own handling, but an interrupt before
    a command runs exits 130 too (click exits 1 with "Aborted!")."""
    try:
        status = cli.main(prog_name="parity", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        Interrupted("interrupted; nothing was judged").show()
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(status if isinstance(status, int) else 0)


if __name__ == "__main__":
    sys.exit(main())
