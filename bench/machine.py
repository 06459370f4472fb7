"""The machine a benchmark ran on: CPU, cores, memory, software versions.

Numbers from another machine, or another version of a runtime, are not
comparable; every result carries this record so that a reader can tell.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def machine_info() -> dict[str, Any]:
    """CPU model, logical cores (and those this process may use), memory in GiB,
    the load average when asked (other processes skew timings on a shared
    machine), OS, Python and the versions of the packages that do the work."""
    from parity.runtime.versions import tool_versions

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": round(memory_bytes("MemTotal") / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": tool_versions(),
    }


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The first "model name" of ``/proc/cpuinfo``, else what Python knows."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_bytes(field: str = "MemAvailable", meminfo: Path = Path("/proc/meminfo")) -> int:
    """A field of ``/proc/meminfo`` in bytes (0 where there is none)."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
