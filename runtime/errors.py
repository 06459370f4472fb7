"""The one exception type that parity raises for bad input.

Every public function raises :class:`ParityError` (or a subclass) when a file,
a bundle or an input array is wrong. Its message is one line that names the
offending file or input and says what is wrong; the CLI prints it and exits 2.
"""

from __future__ import annotations

import re

# The colour and bold escapes some libraries (Keras) put in their messages.
_TERMINAL_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")


class ParityError(Exception):
    """Bad input: a missing or corrupt file, a wrong array, a bad option."""


class BundleError(ParityError):
    """A bundle on disk is missing, corrupt, of an unknown version or not loadable."""


class InputError(ParityError):
    """An input array does not fit the graph (dtype, rank, fixed dims, values)."""


class RunError(ParityError):
    """ONNX Runtime failed while running a graph on inputs that passed the checks."""


class LimitError(ParityError):
    """A run went beyond one of the limits of :mod:`parity.runtime.bounds`
    (time, memory); the message names the limit and how to raise it."""


class ParameterError(ParityError):
    """A function's parameter has a value it cannot take.

    ``parameter`` is the Python parameter's name; the message says what is wrong
    without naming it, so that each caller can name it its own way (the CLI
    says ``--steps`` where the library says ``steps``)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.reason = message


def quoted(exc: BaseException, limit: int = 300) -> str:
    """What a one-line error quotes of a library's exception: its message on
    one line (terminal escapes removed, whitespace collapsed; a library's
    reason often follows a first line that only says where), cut after
    ``limit`` characters; its type's name when it has no message.

    Args:
        exc: the library's exception.
        limit: the longest quote, in characters.
    """
    text = " ".join(_TERMINAL_ESCAPES.sub("", str(exc)).split())
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return text or type(exc).__name__
