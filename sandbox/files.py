"""Files into and out of a workspace, host-side: ``/workspace/inbox`` and ``/workspace/outbox``.

Everything below a workspace's root was written by blocks, so it is treated as hostile:

- every path is opened relative to a directory fd with ``O_NOFOLLOW``: a block that planted
  ``inbox`` or ``outbox`` as a symlink to ``/etc`` gets its link replaced (inbox) or nothing
  read (outbox), never a host file;
- a file is created with ``O_CREAT|O_EXCL`` (never an existing entry, never through a link),
  owned by the workspace's uid, mode 0600 in a 0700 directory;
- an outbox entry is looked at with ``lstat``, then opened ``O_PATH|O_NOFOLLOW`` (which opens
  no device and blocks on no FIFO), checked to be the same regular file, and only then
  reopened for reading through ``/proc/self/fd``; a file that changes while it is read is
  skipped;
- counts and sizes are bounded before anything is read.

Blocking I/O: callers run these in a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Collection
from dataclasses import dataclass

from sandbox import quota, tree
from sandbox.errors import FileRejected
from sandbox.filenames import numbered, safe_name

INBOX, OUTBOX = "inbox", "outbox"
SCAN_ENTRIES = 1000  # outbox entries looked at, at most
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@dataclass(frozen=True)
class StoredFile:
    """A file saved in a workspace's inbox."""

    name: str  # as saved: /workspace/inbox/<name>
    bytes: int
    sha256: str


@dataclass(frozen=True)
class OutboxFile:
    """A file read from a workspace's outbox, to send."""

    name: str  # safe, unique among the files sent with it
    data: bytes
    sha256: str


@dataclass(frozen=True)
class Skipped:
    """An outbox entry that is not sent, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class Outbox:
    """What the outbox holds that was not sent before, and what of it cannot be sent."""

    files: tuple[OutboxFile, ...] = ()
    skipped: tuple[Skipped, ...] = ()


def write_inbox(
    root_fd: int,
    *,
    name: str,
    data: bytes,
    owner: tuple[int, int] | None,
    quota_bytes: int | None = None,
    max_files: int = 10_000,
) -> StoredFile:
    """Save ``data`` as a new file in the inbox below workspace root ``root_fd``.

    ``owner`` (uid, gid) gets the directory and the file when we are root; ``quota_bytes``
    is checked first for a directory workspace (an image's filesystem refuses by itself)."""
    if quota_bytes is not None:
        over = quota.check(
            root_fd, quota_bytes=quota_bytes, max_files=max_files - 1, extra_bytes=len(data)
        )
        if over is not None:
            raise FileRejected(f"the workspace has no room for {len(data)} more bytes: it {over}")
    inbox = _own_dir(root_fd, INBOX, owner=owner)
    try:
        saved = _create(inbox, safe_name(name), data, owner=owner)
    finally:
        os.close(inbox)
    return StoredFile(name=saved, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


def _own_dir(root_fd: int, name: str, *, owner: tuple[int, int] | None) -> int:
    """An fd of directory ``name`` below ``root_fd``; whatever else is there (a link, a file,
    a FIFO) is removed first, never followed."""
    for _ in range(3):  # a block running now may plant the entry again: try a few times
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=root_fd)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=root_fd)
            continue
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise FileRejected(f"cannot open /workspace/{name}: {exc.strerror}") from None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=root_fd)  # the link itself, never what it names
            continue
        if owner is not None and os.geteuid() == 0:
            os.fchown(fd, *owner)
        os.fchmod(fd, 0o700)
        return fd
    raise FileRejected(f"/workspace/{name} keeps being replaced; try again")


def _create(dir_fd: int, name: str, data: bytes, *, owner: tuple[int, int] | None) -> str:
    """Write ``data`` to the first free one of ``name``, ``name (2)`` …; the name used."""
    for candidate in numbered(name):
        try:
            fd = os.open(candidate, _NEW_FILE, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
        except OSError as exc:
            raise FileRejected(f"cannot create {candidate}: {exc.strerror}") from None
        try:
            if owner is not None and os.geteuid() == 0:
                os.fchown(fd, *owner)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(candidate, dir_fd=dir_fd)
            if exc.errno in _FULL:
                raise FileRejected(f"the workspace is full ({exc.strerror})") from None
            raise FileRejected(f"cannot write {candidate}: {exc.strerror}") from None
        os.close(fd)
        return candidate
    raise FileRejected(f"the inbox holds too many files named like {name}")


def read_outbox(
    root_fd: int, *, sent: Collection[tuple[str, str]], max_files: int, max_bytes: int
) -> Outbox:
    """The regular files directly in the outbox below ``root_fd`` not yet sent as (name,
    sha256) in ``sent``: at most ``max_files`` of at most ``max_bytes`` each, by name."""
    try:
        fd = os.open(OUTBOX, _DIR_FLAGS, dir_fd=root_fd)
    except FileNotFoundError:
        return Outbox()
    except OSError:
        return Outbox(skipped=(Skipped(OUTBOX, "is not a directory; nothing was sent"),))
    try:
        return _read_entries(fd, sent=set(sent), max_files=max_files, max_bytes=max_bytes)
    finally:
        os.close(fd)


def _listing(fd: int) -> tuple[list[tuple[str, os.stat_result]], bool]:
    """(name, lstat) of the directory's entries by name, at most ``SCAN_ENTRIES``; and
    whether there were more."""
    found: list[tuple[str, os.stat_result]] = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if len(found) >= SCAN_ENTRIES:
                return sorted(found, key=lambda e: e[0]), True
            with contextlib.suppress(OSError):
                found.append((entry.name, entry.stat(follow_symlinks=False)))
    return sorted(found, key=lambda e: e[0]), False


def _read_entries(fd: int, *, sent: set[tuple[str, str]], max_files: int, max_bytes: int) -> Outbox:
    entries, more = _listing(fd)
    files: list[OutboxFile] = []
    skipped = [Skipped(OUTBOX, f"holds more than {SCAN_ENTRIES} entries")] if more else []
    names: set[str] = set()
    for raw, info in entries:
        name = next(n for n in numbered(safe_name(raw)) if n not in names)
        why = _not_sendable(info, max_bytes=max_bytes)
        if why is None and len(files) >= max_files:
            why = f"more than {max_files} files to send at once"
        data = _read(fd, raw, info) if why is None else None
        if why is None and data is None:
            why = "changed while it was read"
        if why is not None or data is None:
            skipped.append(Skipped(name, why or "not read"))
            continue
        digest = hashlib.sha256(data).hexdigest()
        if (name, digest) not in sent:
            names.add(name)
            files.append(OutboxFile(name=name, data=data, sha256=digest))
    return Outbox(files=tuple(files), skipped=tuple(skipped))


def _not_sendable(info: os.stat_result, *, max_bytes: int) -> str | None:
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link (only files are sent)"
    if stat.S_ISDIR(mode):
        return "a directory (only files directly in /workspace/outbox are sent)"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if info.st_size > max_bytes:
        return f"{info.st_size} bytes, over the limit of {max_bytes} bytes"
    return None


def _read(dir_fd: int, name: str, info: os.stat_result) -> bytes | None:
    """The content of regular file ``name`` if it is still the entry ``info`` described and
    does not change while it is read; else None."""
    try:
        path_fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        before = os.fstat(path_fd)
        same = (before.st_dev, before.st_ino) == (info.st_dev, info.st_ino)
        if not same or not stat.S_ISREG(before.st_mode) or before.st_size != info.st_size:
            return None
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        fd = os.open(f"/proc/self/fd/{path_fd}", flags)  # the inode held, not the name
    except OSError:
        os.close(path_fd)
        return None
    try:
        data = _read_at_most(fd, before.st_size + 1)
        after = os.fstat(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
        os.close(path_fd)
    unchanged = (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    return data if unchanged and len(data) == before.st_size else None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, total = [], 0
    while total < limit:
        chunk = os.read(fd, min(1 << 20, limit - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def open_root(path: os.PathLike[str] | str) -> int:
    """An fd of a workspace's root (its last component is never a link)."""
    return tree.open_dir(path)
