"""Per-run scratch directories: the block's code file, nsjail's log, the way to the workspace.

A run directory belongs to the run's host uid with mode 0700, and its code file is 0400: no
other local user can read a block's code. nsjail's command line (which every local user can
read in ``ps``) names only paths inside it; the workspace is reached through a link there,
so neither ``ps`` nor the jail's own mount table names the workspace.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
import time
from pathlib import Path

from sandbox import tree
from sandbox.errors import SandboxUnavailable
from sandbox.toolclient import ClientPaths, write_client

log = logging.getLogger(__name__)
STALE_AFTER_SECONDS = 7200.0  # longer than any run can last (wall limits stop at 1 h)
REMOVE_SECONDS = 30.0  # per directory: a hostile tree never holds up the rest


def _scratch_base() -> Path:
    """A tmpfs when there is one: creating and deleting a run's few files on a disk with
    ``discard`` costs several milliseconds per run, on tmpfs a fraction of one."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return Path(tempfile.gettempdir())


def runs_root() -> Path:
    """A directory of ours, traversable but not listable, for per-run scratch dirs."""
    base = _scratch_base() / f"opsloop-runs-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        base.mkdir(mode=0o711)
    info = base.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise SandboxUnavailable(f"{base} exists but is not our directory; remove it")
    if stat.S_IMODE(info.st_mode) != 0o711:
        base.chmod(0o711)
    return base


def _give(path: Path | int, owner: tuple[int, int]) -> None:
    """Hand ``path`` to the run's uid (only root can, and only root needs to)."""
    if os.geteuid() != 0 or owner == (0, 0):
        return
    if isinstance(path, int):
        os.fchown(path, *owner)
    else:
        os.chown(path, *owner, follow_symlinks=False)


def _age(info: os.stat_result) -> float:
    return min(info.st_mtime, info.st_ctime)


def remove_stale_run_dirs(*, older_than: float = STALE_AFTER_SECONDS) -> None:
    """Delete scratch dirs left by runs of a killed opsloop; one that resists is logged and
    skipped. A dir's age is the older of its mtime and ctime: an unsafe-local block can set
    the mtime of its run dir to 2100, never its ctime."""
    cutoff = time.time() - older_than
    try:
        root_fd = tree.open_dir(runs_root())
    except (OSError, SandboxUnavailable) as exc:
        log.warning("cannot look for stale run directories: %s", exc)
        return
    try:
        with os.scandir(root_fd) as entries:
            stale = [
                e.name
                for e in entries
                if e.name.startswith("run-") and _age(e.stat(follow_symlinks=False)) < cutoff
            ]
        for name in stale:
            if not tree.remove(root_fd, name, budget=tree.Budget(seconds=REMOVE_SECONDS)):
                log.warning("could not remove the stale run directory %s; skipped", name)
    except OSError as exc:
        log.warning("cannot clean stale run directories: %s", exc)
    finally:
        os.close(root_fd)


class RunDir:
    """A scratch directory for one run, owned by the run's uid (0700)."""

    def __init__(self, *, code: bytes, suffix: str, owner: tuple[int, int]) -> None:
        self.owner = owner
        self.path = Path(tempfile.mkdtemp(prefix="run-", dir=runs_root()))  # 0700
        self.code_file = self.path / f"code{suffix}"
        self.log_file = self.path / "nsjail.log"
        try:
            fd = os.open(self.code_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            with open(fd, "wb") as file:
                file.write(code)
                _give(fd, owner)
            _give(self.path, owner)
        except OSError:
            self.remove()
            raise

    def link_workspace(self, workspace: Path) -> Path:
        """A link to ``workspace`` inside this directory, to mount it by a name that says
        nothing (the link is ours; the jail never sees this directory)."""
        link = self.path / "workspace"
        link.symlink_to(workspace)
        return link

    def add_tools_client(self) -> ClientPaths:
        """The jail's tool client (``sandbox.toolclient``), read-only, in this directory.
        ``tools.py`` sits next to the code file, so a Python block run without ``-I`` (its
        script's directory first on ``sys.path``) imports it, in a jail or not."""
        return write_client(self.path)

    def scratch_workspace(self) -> Path:
        """A workspace on the host that lives only as long as this run (unsafe-local)."""
        path = self.path / "scratch"
        path.mkdir(mode=0o700)
        _give(path, self.owner)
        return path

    def remove(self) -> None:
        """Delete the directory and whatever the run left in it (bounded; logged if stuck)."""
        if not tree.remove_path(self.path, budget=tree.Budget(seconds=REMOVE_SECONDS)):
            log.warning("could not remove %s; it is removed as stale later", self.path)
