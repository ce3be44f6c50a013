"""Which cgroups can cap a jail here, and a per-run memory cgroup to tell when it hit its cap.

nsjail creates and removes its own per-jail cgroups (``NSJAIL.<pid>``) below a parent we
name. For memory we put one more level of our own between them (``opsloop/run-<id>``) that
carries the real limit (and swap 0), because nsjail deletes its cgroup before we could read
whether it ran out of memory: ours survives until we have read ``memory.failcnt``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CgroupKind = Literal["v2", "v1", "none"]
PARENT = "opsloop"
V1_MEMORY = Path("/sys/fs/cgroup/memory")
V1_PIDS = Path("/sys/fs/cgroup/pids")
V2_ROOT = Path("/sys/fs/cgroup")
# nsjail's own child is given a slightly higher cap than our run cgroup, so the run cgroup is
# the one that hits the limit (and counts the failure).
CHILD_SLACK = 16 * 1024 * 1024
# Charges are batched, so the peak of a cgroup that hit its cap can sit just below the limit.
PEAK_MARGIN = 512 * 1024


@dataclass(frozen=True)
class CgroupSetup:
    """How (and whether) memory and task caps are enforced with cgroups on this host."""

    kind: CgroupKind
    memory_mount: str | None = None  # v1: the memory hierarchy; v2: the unified root
    pids_mount: str | None = None
    parent: str = PARENT
    reason: str = ""  # why cgroups are not used, when kind == "none"


def _writable_dir(path: Path) -> bool:
    try:
        path.mkdir(exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)


def _v2_controllers(root: Path) -> set[str]:
    try:
        return set((root / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


def detect_cgroups(*, parent: str = PARENT) -> CgroupSetup:
    """Prefer a cgroup v2 with memory and pids, then v1 memory+pids, else none (rlimits)."""
    if {"memory", "pids"} <= _v2_controllers(V2_ROOT):
        ours = V2_ROOT / parent
        try:
            with contextlib.suppress(OSError):
                (V2_ROOT / "cgroup.subtree_control").write_text("+memory +pids")
            if _writable_dir(ours):
                (ours / "cgroup.subtree_control").write_text("+memory +pids")
                return CgroupSetup(
                    kind="v2", memory_mount=str(ours), pids_mount=str(ours), parent=parent
                )
        except OSError as exc:
            v2_error = f"cgroup v2 is present but not delegated to us ({exc.strerror})"
        else:
            v2_error = "cgroup v2 is present but not writable"
    else:
        v2_error = "no cgroup v2 with the memory and pids controllers"
    if (V1_MEMORY / "memory.limit_in_bytes").exists() and (V1_PIDS / "cgroup.procs").exists():
        if _writable_dir(V1_MEMORY / parent) and _writable_dir(V1_PIDS / parent):
            return CgroupSetup(
                kind="v1", memory_mount=str(V1_MEMORY), pids_mount=str(V1_PIDS), parent=parent
            )
        return CgroupSetup(kind="none", reason="cgroup v1 memory/pids are not writable by us")
    return CgroupSetup(kind="none", reason=v2_error)


class RunCgroup:
    """A memory cgroup for one run (v1 only), holding the limit and counting failures."""

    def __init__(self, *, setup: CgroupSetup, memory_bytes: int) -> None:
        assert setup.kind == "v1" and setup.memory_mount
        self.name = f"{setup.parent}/run-{secrets.token_hex(6)}"
        self.path = Path(setup.memory_mount) / self.name
        self.path.mkdir()
        (self.path / "memory.limit_in_bytes").write_text(str(memory_bytes))
        memsw = self.path / "memory.memsw.limit_in_bytes"
        if memsw.exists():  # swap accounting present: memory+swap == memory, i.e. swap 0
            memsw.write_text(str(memory_bytes))
        else:
            with contextlib.suppress(OSError):
                (self.path / "memory.swappiness").write_text("0")

    def hit_limit(self) -> bool:
        """True when the run's memory reached its cap (peak usage at the limit, or a failure).

        Recent kernels leave v1 ``memory.failcnt`` at 0 even when the cap is hit, so the peak
        (``max_usage_in_bytes``, which can never exceed the limit) is the reliable witness.
        """
        try:
            limit = int((self.path / "memory.limit_in_bytes").read_text())
            peak = int((self.path / "memory.max_usage_in_bytes").read_text())
            if peak >= limit - PEAK_MARGIN:
                return True
            if int((self.path / "memory.failcnt").read_text()) > 0:
                return True
            for line in (self.path / "memory.oom_control").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            return False
        return False

    def remove(self) -> None:
        """Remove the run cgroup (and any child nsjail left behind when it was killed)."""
        remove_tree(self.path)


def remove_tree(path: Path, *, attempts: int = 50) -> None:
    """rmdir a cgroup and its children, retrying briefly while killed tasks exit."""
    for _ in range(attempts):
        try:
            for child in sorted((p for p in path.iterdir() if p.is_dir()), reverse=True):
                remove_tree(child, attempts=1)
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def remove_stale_runs(setup: CgroupSetup, *, older_than: float = 3600.0) -> None:
    """Remove run cgroups left by a crashed opsloop (old, empty ones only; busy ones stay)."""
    if setup.kind != "v1" or not setup.memory_mount:
        return
    base = Path(setup.memory_mount) / setup.parent
    cutoff = time.time() - older_than  # never race a run that another process just started
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            if entry.name.startswith("run-") and entry.stat().st_mtime < cutoff:
                remove_tree(entry, attempts=1)
