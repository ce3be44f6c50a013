"""Workspace images made and mounted ahead, for prestarted kernels (``sandbox.kernels``).

A spare is an image ``.images/.spare-<hex>.ext4`` made for one uid and mounted, as any
workspace image is (``nosuid,nodev``, lost+found gone), at ``.images/.spare-<hex>.d``. Both
are inside ``.images``, root's and 0700: no jail and no local user can reach a spare before
it is a workspace, and it holds nothing but an empty filesystem of that uid.

A spare's name carries its maker, ``.spare-<pid>-<start time>-<hex>``, so that the sweep
drops the spares of a process that is gone at once (a service restarting in a loop would
otherwise pile up mounted loop devices until they run out), whatever their age; a reused pid
has another start time. Spares with no maker in their name go by age.

A new workspace takes a spare by renaming the image and *moving* its mount onto the
workspace's directory (``mount(2)`` with ``MS_MOVE``: one system call instead of a ``mount``
process and a loop device set up while the user waits). The moved mount is the same mount,
with the same options. When the move is refused (a shared parent mount refuses ``MS_MOVE``),
the spare's mount is dropped and the workspace mounts its image itself, as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from pathlib import Path

from sandbox import images

MS_MOVE = 8192


def maker() -> str:
    """This process, as a spare's name carries it: its pid and start time."""
    return f"{os.getpid()}-{_start_time(os.getpid())}"


def _start_time(pid: int) -> str:
    """The start time of process ``pid`` (clock ticks since boot), "" when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return ""
    return stat.rpartition(b")")[2].split()[19].decode()


def _maker_gone(name: str, prefix: str) -> bool:
    """Is the process that made spare ``name`` gone? False when the name does not say."""
    pid, _, rest = name[len(prefix) :].partition("-")
    started = rest.partition("-")[0]
    if not (pid.isdigit() and started.isdigit()):
        return False
    return _start_time(int(pid)) != started


def mount_point(image: Path) -> Path:
    """Where spare ``image`` is mounted while it waits."""
    return image.with_suffix(".d")


def make(image: Path, *, quota_bytes: int, files: int, owner: tuple[int, int]) -> None:
    """Make ``image`` for ``owner`` and mount it at its mount point (blocking)."""
    images.create(image, quota_bytes=quota_bytes, files=files, owner=owner)
    where = mount_point(image)
    try:
        where.mkdir(mode=0o700)
        images.mount(image, where)
    except BaseException:
        drop(image)
        raise


def take(image: Path, *, to_image: Path, to_dir: Path) -> bool:
    """Rename spare ``image`` to ``to_image`` and move its mount onto ``to_dir``; False when
    the mount could not be moved (the image is renamed either way, and unmounted then)."""
    image.rename(to_image)  # the loop device holds the file, not its name
    where = mount_point(image)
    if not images.is_mounted(where):
        _remove_dir(where)
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    moved = libc.mount(os.fsencode(where), os.fsencode(to_dir), None, MS_MOVE, None) == 0
    if not moved:
        images.unmount(where)
    _remove_dir(where)
    return moved


def drop(image: Path) -> None:
    """Unmount and delete a spare nobody took (a prestarted kernel closed unused)."""
    where = mount_point(image)
    if images.is_mounted(where):
        images.unmount(where)
    _remove_dir(where)
    with contextlib.suppress(OSError):
        image.unlink()


def sweep(directory: Path, *, prefix: str, older_than: float) -> None:
    """Drop spares (``prefix``...) whose maker is gone, or last changed before
    ``older_than``: a stopped process's."""
    stale: list[Path] = []
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        stale = [
            Path(entry.path)
            for entry in entries
            if entry.name.startswith(prefix)
            and (
                _maker_gone(entry.name, prefix)
                or entry.stat(follow_symlinks=False).st_mtime < older_than
            )
        ]
    for path in stale:
        drop(path if path.suffix == ".ext4" else path.with_suffix(".ext4"))


def _remove_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()
