"""Telling the user's own code failing apart from a library failing.

A model runs code its author wrote: a ``Lambda``'s function, a custom
layer's ``call``. When that code raises (a ``Lambda`` saved by Keras 2 that
names ``K``, a module Keras 3 does not give it: ``NameError``), TensorFlow
and tf2onnx wrap the exception in their own ("in user code: ..."), and the
user would read "tf2onnx cannot convert" for what is their model's doing.
:func:`user_code_error` finds the user's exception, the layer that called
it and the line of the user's file it came from.
"""

from __future__ import annotations

import re
import sys
import sysconfig
import traceback
from pathlib import Path

from parity.runtime.errors import quoted

# Where installed libraries live: a frame elsewhere is the user's code.
_LIBRARY_ROOTS = tuple(
    str(Path(p).resolve())
    for p in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], sys.prefix}
) + (str(Path(__file__).resolve().parent.parent),)
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
_LAYER = re.compile(
    r"Exception encountered when calling (?:layer )?['\"]?([\w.]+?)['\"]?(?:\.call)?\("
)
_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")


def user_code_error(exc: BaseException) -> str | None:
    """What the user's code raised inside ``exc``, in one line (the layer,
    the exception and its message, the file and line), or None where the
    failure did not come from the user's code.

    Args:
        exc: an exception raised while TensorFlow, Keras or tf2onnx ran a
            model (tracing or calling it).
    """
    frames = _user_frames(exc)
    if not frames:
        return None
    file, line, function = frames[-1]
    text = _ESCAPES.sub("", str(exc))
    layer = _LAYER.search(text)
    cause = _innermost_message(text) or quoted(exc)
    where = f"{Path(file).name}, line {line}, in {function}"
    called = f" in {layer[1]}" if layer else ""
    return f"the model's own code raised {type(exc).__name__}{called} ({where}): {cause}"


def _user_frames(exc: BaseException) -> list[tuple[str, int, str]]:
    """The frames of the user's code: from the traceback TensorFlow writes
    into its message ("in user code:"), else from the exception's own."""
    text = str(exc)
    frames = [(f, int(n), fn) for f, n, fn in _FRAME.findall(text) if _is_user_file(f)]
    if frames:
        return frames
    found = []
    for cause in _chain(exc):
        for frame in traceback.extract_tb(cause.__traceback__):
            if _is_user_file(frame.filename):
                found.append((frame.filename, frame.lineno or 0, frame.name))
    return found


def _chain(exc: BaseException) -> list[BaseException]:
    seen, chain = set(), []
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def _is_user_file(file: str) -> bool:
    if file.startswith("<") or not file.endswith(".py"):
        return file == "<stdin>" or file.startswith("<ipython")
    path = str(Path(file).resolve()) if Path(file).is_absolute() else file
    return not path.startswith(_LIBRARY_ROOTS)


def _innermost_message(text: str) -> str | None:
    """The message Keras shows in bold inside its own ("Exception encountered
    when calling ...: <message>"), else the last ``Error: message`` line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if _LAYER.search(line) and index + 1 < len(lines):
            return lines[index + 1]
    errors = [line for line in lines if re.match(r"^\w+(Error|Exception): ", line)]
    return errors[-1].split(": ", 1)[1] if errors else None
