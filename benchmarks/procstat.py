"""Memory and CPU time of a process and its children from /proc, for the benchmarks that run
stages or servers in child processes.

VmHWM (peak resident set) rather than ``getrusage().ru_maxrss``: on Linux ru_maxrss survives
fork and execve, so a child's figure can carry its parent's peak.
"""

from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far; 0 when it is gone (or not Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def descendants(root: int) -> list[int]:
    """``root`` and every process under it (uvicorn's workers, a stage's helpers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").exists() else []:
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out
