"""Bounded, fd-relative walks of trees that a jail wrote (workspaces, scratch directories).

A block controls every name, type and depth below its workspace, so every host-side walk of
what it wrote goes through ``walk`` here, which:

- never follows a symlink: a directory is entered with ``openat(O_NOFOLLOW|O_DIRECTORY)``
  relative to its parent's fd, and its (device, inode) must be the one its entry had;
- never recurses: an explicit stack, so a chain 100,000 levels deep (deeper than
  ``PATH_MAX``, which ``shutil.rmtree`` turns into a ``RecursionError``) costs memory, not
  Python's recursion limit;
- holds at most ``FDS_HELD`` directory fds: deeper frames let theirs go and are re-entered
  through ``..`` (identity-checked again) on the way back up;
- stays on the filesystem it started on;
- is bounded by a ``Budget`` (a deadline and an entry count): when it runs out the walk
  stops and reports that it is incomplete instead of raising.

Errors of a single entry (it vanished, it cannot be opened) are skipped, never raised: a
walk over hostile data must never stop the work around it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field

FDS_HELD = 64
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID

Identity = tuple[int, int]  # (st_dev, st_ino)


class TooLong(Exception):
    """A quick walk met more than it may look at (``Workspaces.finish``'s ``quick``)."""


@dataclass
class Budget:
    """How long a walk may take and how many entries it may look at."""

    seconds: float = 10.0
    entries: int = 10_000_000
    exhausted: bool = False
    _deadline: float = field(init=False)
    _seen: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.seconds

    def spend(self) -> bool:
        """Charge one entry; False (and ``exhausted``) once the count or the time is up."""
        self._seen = seen = self._seen + 1
        if seen & 127 == 0 or seen > self.entries:  # the clock is read every 128 entries
            self.exhausted = seen > self.entries or time.monotonic() > self._deadline
        return not self.exhausted

    @property
    def out_of_entries(self) -> bool:
        """True when the walk met more entries than ``entries`` (not merely ran out of time)."""
        return self._seen > self.entries


@dataclass(frozen=True)
class Usage:
    """What a tree holds: bytes allocated and entries (every inode type counts)."""

    bytes: int
    files: int
    complete: bool  # False: the budget ran out first (bytes and files are lower bounds)


@dataclass
class _Frame:
    name: str
    ident: Identity
    fd: int | None
    subdirs: list[tuple[str, Identity]] | None = None


OnEntry = Callable[[int, str, os.stat_result], bool]  # (dir fd, name, lstat) -> descend?
OnLeave = Callable[[int, str], None]  # (parent fd, name) after a directory's contents


def _identity(info: os.stat_result) -> Identity:
    return info.st_dev, info.st_ino


def _open_checked(name: str, *, dir_fd: int, ident: Identity) -> int | None:
    """Open directory ``name`` below ``dir_fd`` without following links, if it is ``ident``."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    if _identity(os.fstat(fd)) != ident:
        os.close(fd)  # swapped under us since it was listed: not the directory we meant
        return None
    return fd


def _visit(fd: int, budget: Budget, on_entry: OnEntry, device: int) -> list[tuple[str, Identity]]:
    """Visit the entries of one directory (with their lstat) in one pass; the subdirectories
    to descend into. Fewer once the budget runs out."""
    subdirs = []
    with contextlib.suppress(OSError), os.scandir(fd) as entries:
        for entry in entries:
            if not budget.spend():
                break
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            descend = on_entry(fd, entry.name, info)
            if descend and stat.S_ISDIR(info.st_mode) and info.st_dev == device:
                subdirs.append((entry.name, (info.st_dev, info.st_ino)))
    return subdirs


def walk(
    root_fd: int, *, budget: Budget, on_entry: OnEntry, on_leave: OnLeave | None = None
) -> bool:
    """Visit every entry below ``root_fd`` (depth first); True when the walk was complete.

    ``on_entry`` sees each entry with its parent's fd before anything below it, and answers
    whether to descend (only directories on the root's filesystem are descended into).
    ``on_leave`` runs after a directory's contents, with its parent's fd (e.g. ``rmdir``).
    """
    root = os.fstat(root_fd)
    stack = [_Frame(name="", ident=_identity(root), fd=os.dup(root_fd))]
    complete = True
    try:
        while stack:
            top = stack[-1]
            assert top.fd is not None  # the top of the stack always holds its fd
            if top.subdirs is None:
                top.subdirs = _visit(top.fd, budget, on_entry, root.st_dev)
                if budget.exhausted:  # every entry seen so far was visited: stop here
                    return False
            if top.subdirs:
                name, ident = top.subdirs.pop()
                fd = _open_checked(name, dir_fd=top.fd, ident=ident)
                if fd is None:
                    complete = False
                    continue
                stack.append(_Frame(name=name, ident=ident, fd=fd))
                _let_go(stack)
                continue
            stack.pop()
            if not stack:
                os.close(top.fd)
                break
            parent = stack[-1]
            if parent.fd is None:
                parent.fd = _open_checked("..", dir_fd=top.fd, ident=parent.ident)
            os.close(top.fd)
            if parent.fd is None:  # the tree was moved under us: stop rather than guess
                stack.pop()
                return False
            if on_leave is not None:
                on_leave(parent.fd, top.name)
        return complete and not budget.exhausted
    finally:
        for frame in stack:
            if frame.fd is not None:
                with contextlib.suppress(OSError):
                    os.close(frame.fd)


def _let_go(stack: list[_Frame]) -> None:
    """Keep at most ``FDS_HELD`` fds below the root: the deepest-but-held frame lets go."""
    index = len(stack) - 1 - FDS_HELD
    if index >= 1 and stack[index].fd is not None:
        os.close(stack[index].fd)  # type: ignore[arg-type]
        stack[index].fd = None


def usage(root_fd: int, *, budget: Budget) -> Usage:
    """Bytes allocated and entries below ``root_fd`` (a hard link's data counts once)."""
    total = files = 0
    linked: set[Identity] = set()

    def count(_fd: int, _name: str, info: os.stat_result) -> bool:
        nonlocal total, files
        files += 1
        if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
            if _identity(info) in linked:
                return False
            linked.add(_identity(info))
        total += info.st_blocks * 512
        return True

    complete = walk(root_fd, budget=budget, on_entry=count)
    return Usage(bytes=total, files=files, complete=complete)


def _chmod_entry(dir_fd: int, name: str, info: os.stat_result, mode: int) -> bool:
    """chmod one entry without following links: through an O_PATH fd checked to be it."""
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        if _identity(os.fstat(fd)) != _identity(info):
            return False
        os.chmod(f"/proc/self/fd/{fd}", mode)  # the magic link names the inode we hold
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def strip_special(root_fd: int, *, budget: Budget) -> tuple[int, bool]:
    """Clear setuid/setgid bits and delete device nodes below ``root_fd``.

    Returns how many entries were changed, and whether the walk was complete.
    """
    changed = 0

    def fix(fd: int, name: str, info: os.stat_result) -> bool:
        nonlocal changed
        mode = info.st_mode
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=fd)
                changed += 1
            return False
        if mode & _SPECIAL_BITS and (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            changed += _chmod_entry(fd, name, info, stat.S_IMODE(mode) & ~_SPECIAL_BITS)
        return True

    complete = walk(root_fd, budget=budget, on_entry=fix)
    return changed, complete


def _let_owner_in(dir_fd: int, name: str, info: os.stat_result) -> None:
    """A directory the block made unsearchable (e.g. 000): its owner (not root, who needs no
    permission) gives itself rwx so it can empty it."""
    if os.geteuid() != 0 and stat.S_IMODE(info.st_mode) & stat.S_IRWXU != stat.S_IRWXU:
        _chmod_entry(dir_fd, name, info, stat.S_IMODE(info.st_mode) | stat.S_IRWXU)


def _unlink_entry(fd: int, name: str, info: os.stat_result) -> bool:
    if stat.S_ISDIR(info.st_mode):
        _let_owner_in(fd, name, info)
        return True
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=fd)
    return False


def _rmdir_entry(fd: int, name: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(name, dir_fd=fd)


def empty(root_fd: int, *, budget: Budget) -> bool:
    """Delete everything below ``root_fd``, keeping the directory itself; True when done."""
    walk(root_fd, budget=budget, on_entry=_unlink_entry, on_leave=_rmdir_entry)
    with contextlib.suppress(OSError), os.scandir(root_fd) as rest:
        return next(iter(rest), None) is None
    return False


def remove(parent_fd: int, name: str, *, budget: Budget) -> bool:
    """Delete ``name`` below ``parent_fd`` and everything in it (a link is unlinked, never
    followed); True when it is gone."""
    try:
        info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=parent_fd)
        return True
    _let_owner_in(parent_fd, name, info)
    fd = _open_checked(name, dir_fd=parent_fd, ident=_identity(info))
    if fd is None:
        return False
    try:
        empty(fd, budget=budget)
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=parent_fd)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def open_dir(path: str | os.PathLike[str]) -> int:
    """An fd of directory ``path`` (its last component must not be a symlink)."""
    return os.open(path, _DIR_FLAGS)


def remove_path(path: str | os.PathLike[str], *, budget: Budget) -> bool:
    """``remove`` by path: the parent is ours, only the last component may be hostile."""
    parent, name = os.path.split(os.path.abspath(path))
    try:
        parent_fd = open_dir(parent)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        return remove(parent_fd, name, budget=budget)
    finally:
        os.close(parent_fd)


def close_to_others(path: str | os.PathLike[str], owner: tuple[int, int]) -> None:
    """The workspace's root belongs to its uid and is 0700, whatever a block did to it."""
    fd = open_dir(path)  # O_NOFOLLOW: a link planted in its place is refused
    try:
        if os.geteuid() == 0:
            os.fchown(fd, *owner)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
