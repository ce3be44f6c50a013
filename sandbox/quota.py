"""The caps of a directory workspace (``fs = "directory"``), checked by walking it.

Without a filesystem of its own, a workspace's use is counted: bytes and entries with the
bounded walk of ``sandbox.tree`` (so data deeper than ``PATH_MAX`` counts, and 100,000 files
cost one bounded walk, not a wedged poll), plus the files its running block deleted while
keeping them open, found through the block's processes' ``/proc/<pid>/fd``. A poll that
runs out of time says nothing; the check after the run has a longer budget.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import psutil

from sandbox import tree
from sandbox.process import Watch

MIB = 1024 * 1024
POLL_SECONDS = 0.5  # one poll's walk, at most
CHECK_SECONDS = 5.0  # the walk after a run


def check(
    fd: int,
    *,
    quota_bytes: int,
    max_files: int,
    extra_bytes: int = 0,
    seconds: float = CHECK_SECONDS,
) -> str | None:
    """How the tree at ``fd`` is over a cap ("used 9 MiB, over its 8 MiB cap"), or None."""
    budget = tree.Budget(seconds=seconds, entries=max_files)
    used = tree.usage(fd, budget=budget)
    if used.files > max_files or budget.out_of_entries:
        return f"held more than {max_files} files, over its cap of {max_files} files"
    total = used.bytes + extra_bytes
    if total > quota_bytes:
        return f"used {total // MIB} MiB, over its {quota_bytes // MIB} MiB cap"
    return None


def deleted_open_bytes(pid: int, *, device: int) -> int:
    """Bytes of files on ``device`` that ``pid`` or its descendants deleted but keep open."""
    try:
        top = psutil.Process(pid)
        pids = [pid, *(child.pid for child in top.children(recursive=True))]
    except psutil.Error:
        return 0
    seen: set[int] = set()
    total = 0
    for each in pids:
        fd_dir = f"/proc/{each}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                info = os.stat(f"{fd_dir}/{fd}")  # the open file itself, deleted or not
            except OSError:
                continue
            ghost = info.st_dev == device and info.st_nlink == 0 and stat.S_ISREG(info.st_mode)
            if ghost and info.st_ino not in seen:
                seen.add(info.st_ino)
                total += info.st_blocks * 512
    return total


def over_while_running(path: Path, pid: int, *, quota_bytes: int, max_files: int) -> bool:
    """True when the running block (top process ``pid``) has its workspace over a cap."""
    try:
        fd = tree.open_dir(path)
    except OSError:
        return False
    try:
        ghosts = deleted_open_bytes(pid, device=os.fstat(fd).st_dev)
        over = check(
            fd,
            quota_bytes=quota_bytes,
            max_files=max_files,
            extra_bytes=ghosts,
            seconds=POLL_SECONDS,
        )
        return over is not None
    finally:
        os.close(fd)


def watcher(path: Path, *, quota_bytes: int, max_files: int) -> Watch:
    """The poll of a running block's workspace, run off the event loop."""

    async def over(pid: int) -> bool:
        return await asyncio.to_thread(
            over_while_running, path, pid, quota_bytes=quota_bytes, max_files=max_files
        )

    return over
