"""Which cgroups can cap a jail here, and a per-run memory cgroup to tell when it hit its cap.

nsjail creates and removes its own per-jail cgroups (``NSJAIL.<pid>``) below a parent we
name. For memory we put one more level of our own between them (``opsloop/<id>``) that
carries the real limit (and swap 0). The kernel counts an OOM kill in the victim's own
cgroup, nsjail's, which nsjail deletes before we could read it; so each run cgroup of ours
carries an OOM eventfd (v1 ``cgroup.event_control``), which the kernel signals when the
cgroup runs out of memory and its OOM killer is called. Peak usage is no witness: page
cache from file writes fills a cgroup to its limit without anyone running out.

A block sees its cgroup path in ``/proc/self/cgroup``, so the id says
nothing about us; which process owns a run cgroup is kept in a registry on the host
(``<runs root>/cgroups/<id>`` holds the owner's pid), so a later opsloop can remove the ones
a killed process left.
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
# A pooled cgroup still charged with more than this (page cache of the last run) is emptied
# before it is armed again, so one conversation's cache never crowds the next one's block.
RECLAIM_ABOVE = 1024 * 1024


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


def _registry() -> Path:
    """Where the owner pid of each run cgroup is kept (out of every jail's sight)."""
    from sandbox.rundir import runs_root  # the one scratch area of ours on this host

    path = runs_root() / "cgroups"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    return path


def _oom_eventfd(path: Path) -> int:
    """An eventfd the kernel signals whenever the v1 memory cgroup at ``path`` goes OOM."""
    events = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    control = os.open(path / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
    try:
        (path / "cgroup.event_control").write_text(f"{events} {control}")
    except OSError:
        os.close(events)
        raise
    finally:
        os.close(control)
    return events


def _drain(events: int) -> int:
    try:
        return os.eventfd_read(events)
    except BlockingIOError:
        return 0


class RunCgroup:
    """A memory cgroup for one run at a time (v1 only), holding the limit.

    Creating a v1 memory cgroup costs about a millisecond, so they are pooled and reused
    (``RunCgroupPool``); ``arm`` drains the OOM events of the last run.
    """

    def __init__(self, *, setup: CgroupSetup) -> None:
        assert setup.kind == "v1" and setup.memory_mount
        token = secrets.token_hex(6)
        self.name = f"{setup.parent}/{token}"
        self.path = Path(setup.memory_mount) / self.name
        self._owner_file = _registry() / token
        self._owner_file.write_text(str(os.getpid()))  # first: never an ownerless cgroup of ours
        self.path.mkdir()
        try:
            self._events: int | None = _oom_eventfd(self.path)
        except OSError:
            self.remove()
            raise

    def arm(self, memory_bytes: int) -> None:
        """Set the cap (swap 0), drop what the last run left charged, note the OOM count."""
        memsw = self.path / "memory.memsw.limit_in_bytes"
        limit = self.path / "memory.limit_in_bytes"
        if int((self.path / "memory.usage_in_bytes").read_text()) > RECLAIM_ABOVE:
            with contextlib.suppress(OSError):  # reclaims the page cache of an empty cgroup
                (self.path / "memory.force_empty").write_text("0")
        # memory+swap may never be below memory: order the writes by direction of change.
        current = int(limit.read_text())
        order = [memsw, limit] if memory_bytes >= current else [limit, memsw]
        for path in order:
            if path.exists():  # no memsw file: no swap accounting, swappiness 0 is the best
                path.write_text(str(memory_bytes))
        if not memsw.exists():
            with contextlib.suppress(OSError):
                (self.path / "memory.swappiness").write_text("0")
        if self._events is not None:
            _drain(self._events)

    def oom_killed(self) -> bool:
        """True when this cgroup ran out of memory (its OOM killer was called) since ``arm``."""
        return self._events is not None and _drain(self._events) > 0

    def remove(self) -> None:
        """Remove the run cgroup (and any child nsjail left behind when it was killed)."""
        if getattr(self, "_events", None) is not None:
            os.close(self._events)  # type: ignore[arg-type]
            self._events = None
        remove_tree(self.path)
        if not self.path.exists():
            self._owner_file.unlink(missing_ok=True)


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(name: str) -> int | None:
    """The pid that made run cgroup ``name`` (the registry, or the old ``run-<pid>-<id>``)."""
    parts = name.split("-")
    if len(parts) == 3 and parts[0] == "run" and parts[1].isdigit():
        return int(parts[1])
    try:
        return int((_registry() / name).read_text())
    except (OSError, ValueError):
        return None


def remove_stale_runs(setup: CgroupSetup) -> None:
    """Remove run cgroups left by opsloop processes that are gone (busy ones stay), and the
    ``NSJAIL.<pid>`` cgroups of nsjails that were killed before they could remove them."""
    if setup.kind != "v1" or not setup.memory_mount or not setup.pids_mount:
        return
    with contextlib.suppress(OSError):
        for entry in (Path(setup.memory_mount) / setup.parent).iterdir():
            if not entry.is_dir():
                continue
            owner = _owner(entry.name)
            if owner is None or not _alive(owner):  # rmdir fails while tasks remain
                remove_tree(entry, attempts=1)
                if not entry.exists():
                    (_registry() / entry.name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        for entry in (Path(setup.pids_mount) / setup.parent).iterdir():
            name, _, pid = entry.name.partition(".")
            if name == "NSJAIL" and pid.isdigit() and not _alive(int(pid)):
                remove_tree(entry, attempts=1)  # rmdir fails while tasks remain: those stay


class RunCgroupPool:
    """Idle run cgroups of this process, reused across runs."""

    def __init__(self, *, setup: CgroupSetup, keep: int = 16) -> None:
        self.setup = setup
        self.keep = keep
        self.idle: list[RunCgroup] = []

    def acquire(self, memory_bytes: int) -> RunCgroup:
        """An armed run cgroup (a pooled one when it still exists, else a new one)."""
        while self.idle:
            cgroup = self.idle.pop()
            try:
                cgroup.arm(memory_bytes)
                return cgroup
            except OSError:  # removed under us, or still busy: forget it
                with contextlib.suppress(OSError):
                    cgroup.remove()
        cgroup = RunCgroup(setup=self.setup)
        try:
            cgroup.arm(memory_bytes)
        except OSError:
            cgroup.remove()
            raise
        return cgroup

    def drain(self) -> None:
        """Remove every idle cgroup (when the sandbox is closed, or at exit)."""
        while self.idle:
            with contextlib.suppress(OSError):
                self.idle.pop().remove()

    def release(self, cgroup: RunCgroup) -> None:
        """Return ``cgroup`` after its run (removed instead when it is not empty)."""
        try:
            busy = any(p.is_dir() for p in cgroup.path.iterdir()) or bool(
                (cgroup.path / "cgroup.procs").read_text().strip()
            )
        except OSError:
            return
        if busy or len(self.idle) >= self.keep:
            cgroup.remove()
        else:
            self.idle.append(cgroup)
