"""Memory of a process from /proc/PID/status, for the benchmarks that run stages in children.

VmHWM (peak resident set) rather than ``getrusage().ru_maxrss``: on Linux ru_maxrss survives
fork and execve, so a child's figure can carry its parent's peak.
"""

from __future__ import annotations

from pathlib import Path


def status_mb(field: str, pid: int | str = "self", default: float = float("nan")) -> float:
    """``field`` (e.g. ``VmHWM``, ``VmRSS``) of process ``pid`` in MB; ``default`` when the
    process or the field is not there (it exited, or this is not Linux)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return default
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    return default
