"""Per-conversation workspaces (``/workspace`` in the jail) and per-run scratch directories.

A workspace name is opaque (the loop passes the conversation id) and is validated to be a
single safe directory name, so it can never point outside the workspaces root. Workspaces
belong to the jail user, have a size cap (polled while a block runs: a block that goes over
it is stopped, the workspace emptied, and the block told so), and are removed after an idle
time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import SandboxUnavailable
from sandbox.layout import JAIL_UID, jail_owner, unreachable_part
from sandbox.request import check_workspace

PRUNE_EVERY_SECONDS = 600.0


def _owned_by_jail(path: Path) -> None:
    uid, gid = jail_owner()
    if (uid, gid) != (os.getuid(), os.getgid()):
        os.chown(path, uid, gid, follow_symlinks=False)
    path.chmod(0o700)  # we just created it: not a symlink


def disk_usage(path: Path) -> int:
    """Bytes allocated below ``path``, never following symlinks (a block may plant them)."""
    total = 0
    stack = [path]
    while stack:
        current = stack.pop()
        with contextlib.suppress(OSError), os.scandir(current) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    info = entry.stat(follow_symlinks=False)
                    total += info.st_blocks * 512
                    if stat.S_ISDIR(info.st_mode):
                        stack.append(Path(entry.path))
    return total


def empty_dir(path: Path) -> None:
    """Delete everything inside ``path`` (not following symlinks), keeping ``path`` itself."""
    with contextlib.suppress(OSError), os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


@dataclass
class Workspaces:
    """The directory of all workspaces, with its size cap and idle expiry."""

    root: Path
    quota_bytes: int
    idle_seconds: float
    _last_prune: float = 0.0

    def prepare(self, name: str) -> Path:
        """The directory of workspace ``name``, created for the jail user when new."""
        path = self.root / check_workspace(name)
        if not self.root.is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            self.root.chmod(0o711)  # traversable by the jail user, not listable
        blocked = unreachable_part(path)
        if blocked:
            raise SandboxUnavailable(
                f"workspaces in {self.root} are not reachable by the jail user (uid {JAIL_UID}) "
                f"because {blocked} is not searchable by others: set OPSLOOP_DATA_DIR to a "
                "directory such as /var/lib/opsloop, or chmod o+x that directory"
            )
        if path.is_symlink():
            raise SandboxUnavailable(f"workspace {path} is a symlink; refusing to use it")
        if not path.is_dir():
            path.mkdir(exist_ok=True)  # two blocks of one conversation may race here
            _owned_by_jail(path)
        os.utime(path)  # the idle clock restarts at every use
        return path

    def over_quota(self, path: Path) -> bool:
        """True when ``path`` uses more than the cap (polled while a block runs)."""
        return disk_usage(path) > self.quota_bytes

    def watcher(self, path: Path) -> Callable[[], Awaitable[bool]]:
        """An async check of ``path`` against the cap, run off the event loop."""

        async def over() -> bool:
            return await asyncio.to_thread(self.over_quota, path)

        return over

    def enforce_quota(self, path: Path) -> str | None:
        """Empty ``path`` when it is over the size cap; returns a notice for the block's stderr."""
        used = disk_usage(path)
        if used <= self.quota_bytes:
            return None
        empty_dir(path)
        return (
            f"\nopsloop: the workspace used {used // (1024 * 1024)} MiB, over its "
            f"{self.quota_bytes // (1024 * 1024)} MiB cap, and was emptied\n"
        )

    def prune(self, *, now: float | None = None) -> list[str]:
        """Remove workspaces idle for longer than ``idle_seconds``; returns their names."""
        now = time.time() if now is None else now
        removed = []
        with contextlib.suppress(OSError), os.scandir(self.root) as entries:
            for entry in entries:
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode) and now - info.st_mtime > self.idle_seconds:
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed.append(entry.name)
        return removed

    def prune_due(self) -> bool:
        """True at most every few minutes: then the caller prunes (off the event loop)."""
        now = time.monotonic()
        if now - self._last_prune < PRUNE_EVERY_SECONDS:
            return False
        self._last_prune = now
        return True


def _scratch_base() -> Path:
    """A tmpfs when there is one: creating and deleting a run's few files on a disk with
    ``discard`` costs several milliseconds per run, on tmpfs a fraction of one."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return Path(tempfile.gettempdir())


def runs_root() -> Path:
    """A root-owned, traversable-but-not-listable directory for per-run scratch dirs."""
    base = _scratch_base() / f"opsloop-runs-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        base.mkdir(mode=0o711)
    info = base.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise SandboxUnavailable(f"{base} exists but is not our directory; remove it")
    if stat.S_IMODE(info.st_mode) != 0o711:
        base.chmod(0o711)
    return base


def remove_stale_run_dirs(*, older_than: float = 7200.0) -> None:
    """Delete scratch dirs left by runs of a killed opsloop (older than any run can last)."""
    cutoff = time.time() - older_than
    with contextlib.suppress(OSError), os.scandir(runs_root()) as entries:
        for entry in entries:
            info = entry.stat(follow_symlinks=False)
            if entry.name.startswith("run-") and info.st_mtime < cutoff:
                shutil.rmtree(entry.path, ignore_errors=True)


class RunDir:
    """A scratch directory for one run: the code file, nsjail's log, a throwaway workspace."""

    def __init__(self, *, code: bytes, suffix: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="run-", dir=runs_root()))
        self.path.chmod(0o711)
        self.code_file = self.path / f"code{suffix}"
        self.code_file.write_bytes(code)
        self.code_file.chmod(0o444)
        self.log_file = self.path / "nsjail.log"

    def scratch_workspace(self) -> Path:
        """A workspace that lives only as long as this run."""
        path = self.path / "workspace"
        path.mkdir()
        _owned_by_jail(path)
        return path

    def remove(self) -> None:
        """Delete the scratch directory and everything the run left in it."""
        shutil.rmtree(self.path, ignore_errors=True)
