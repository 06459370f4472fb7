"""Text laid out for a terminal: tables and paragraphs at most so wide.

A line longer than :data:`MAX_WIDTH` is hard to read whatever the terminal,
so tables keep within the terminal's width up to that: a table's first
column (a check's or an output's name) wraps onto indented lines, and what
does not fit a row goes on lines under the table. Every number a table
leaves out is in the command's JSON.
"""

from __future__ import annotations

import shutil
import textwrap

# The widest line of a table or a paragraph, however wide the terminal.
MAX_WIDTH = 100


def text_width() -> int:
    """The width tables and notes are laid out for: the terminal's, at most
    :data:`MAX_WIDTH` (a line longer than that is hard to read; numbers that
    do not fit are in ``--json``)."""
    return min(shutil.get_terminal_size((MAX_WIDTH, 24)).columns, MAX_WIDTH)


def wrapped(text: str, width: int) -> list[str]:
    """``text`` as lines of at most ``width`` characters, every line after the
    first indented by two spaces (words longer than a line are kept whole).

    Args:
        text: one paragraph.
        width: the longest line.
    """
    return textwrap.wrap(
        text, width, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False
    ) or [""]


def columns(
    header: tuple[str, ...], rows: list[tuple[str, ...]], width: int, right: frozenset[int]
) -> list[str]:
    """A table: a header, a rule, then ``rows``, columns two spaces apart.
    Columns after the first whose every row says "-" are left out; the first
    column takes what room the others leave, its cells wrapped onto indented
    lines below their row where they do not fit.

    Args:
        header: the columns' names.
        rows: the cells of each row, one per column.
        width: the widest line the table may take, where the first column's
            cells can be wrapped to fit.
        right: the columns whose cells are aligned to the right (numbers).
    """
    kept = [0] + [i for i in range(1, len(header)) if any(row[i] != "-" for row in rows)]
    header = tuple(header[i] for i in kept)
    rows = [tuple(row[i] for i in kept) for row in rows]
    right = frozenset(kept.index(i) for i in right if i in kept)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    room = width - sum(widths[1:]) - 2 * (len(widths) - 1)
    widths[0] = max(min(widths[0], room), len(header[0]), 12)
    lines = []
    for number, row in enumerate([header, *rows]):
        first, *more = wrapped(row[0], widths[0])
        cells = [first, *row[1:]]
        lines.append(
            "  ".join(
                cell.rjust(w) if i in right else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()
        )
        lines += more
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def paragraphs(texts: list[str], width: int) -> list[str]:
    """Each of ``texts`` wrapped by :func:`wrapped`, its own leading spaces
    kept before each of its lines.

    Args:
        texts: the paragraphs, one line each.
        width: the longest line.
    """
    lines = []
    for text in texts:
        indent = text[: len(text) - len(text.lstrip())]
        lines += [indent + line for line in wrapped(text.lstrip(), width - len(indent))]
    return lines
