"""What an interrupted export leaves beside a bundle folder, by name.

The exporter writes a bundle into a staging folder beside ``OUT_DIR`` and
swaps it into place (:mod:`parity.exporter.bundle_writer`). Where the system
cannot swap two folders in one step, the old bundle is first renamed aside;
an export stopped right then leaves ``OUT_DIR`` missing and the old bundle,
whole, aside. The reader looks for it there (:func:`aside_bundle`), without
renaming anything; the next export puts it back. Names:
``.NAME.new.PID.XXXX`` (staging) and ``.NAME.old.PID.XXXX`` (set aside).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

NEW, OLD = "new", "old"
# A leftover whose process is gone, or this old, is stale: the next export
# removes it (or, for a bundle set aside, renames it back).
STALE_AFTER_S = 3600.0


@dataclass(frozen=True)
class Leftover:
    """A folder an export left beside its destination."""

    path: Path
    kind: str  # NEW (staging) or OLD (an old bundle set aside)
    stale: bool  # its export is no longer running


def leftover_prefix(target: Path, kind: str, pid: int) -> str:
    """The start of the name of a ``kind`` leftover of process ``pid`` exporting to ``target``."""
    return f".{target.name}.{kind}.{pid}."


def leftovers(target: Path) -> list[Leftover]:
    """Every leftover of an export to ``target``, found beside it."""
    pattern = re.compile(re.escape(f".{target.name}.") + f"({NEW}|{OLD})" + r"\.(\d+)\.[a-z0-9_]+")
    found = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            match = pattern.fullmatch(entry.name)
            if match and entry.is_dir(follow_symlinks=False):
                path = Path(entry.path)
                stale = not _alive(int(match[2])) or time.time() - mtime(path) > STALE_AFTER_S
                found.append(Leftover(path, match[1], stale))
    return found


def aside_bundle(target: Path) -> Path | None:
    """Where ``target`` is missing because an export was stopped while its
    old bundle was set aside: that bundle (the newest such), else None."""
    if not target.name or os.path.lexists(target):
        return None
    aside = [left.path for left in leftovers(target) if left.kind == OLD and left.stale]
    return max(aside, key=mtime, default=None)


def mtime(path: Path) -> float:
    """``path``'s modification time, 0 where it cannot be read."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _alive(pid: int) -> bool:
    """Whether process ``pid`` may still be running (on Windows, ``os.kill``
    ends a process instead of asking about it: only age tells there)."""
    if pid == os.getpid() or os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, OSError):
        return True  # another user's process, or one that cannot be asked
    return True
