"""The one exception type that parity raises for bad input.

Every public function raises :class:`ParityError` (or a subclass) when a file,
a bundle or an input array is wrong. Its message is one line that names the
offending file or input and says what is wrong; the CLI prints it and exits 2.
"""

from __future__ import annotations


class ParityError(Exception):
    """Bad input: a missing or corrupt file, a wrong array, a bad option."""


class BundleError(ParityError):
    """A bundle on disk is missing, corrupt, of an unknown version or not loadable."""


class InputError(ParityError):
    """An input array does not fit the graph (dtype, rank, fixed dims, values)."""


class RunError(ParityError):
    """ONNX Runtime failed while running a graph on inputs that passed the checks."""


class ParameterError(ParityError):
    """A function's parameter has a value it cannot take.

    ``parameter`` is the Python parameter's name; the message says what is wrong
    without naming it, so that each caller can name it its own way (the CLI
    says ``--steps`` where the library says ``steps``)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.reason = message


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type's name when it has none):
    what a one-line error quotes of a library's exception."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
