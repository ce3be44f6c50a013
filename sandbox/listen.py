"""Where the sandbox service listens: TCP with a token, or a unix socket only its user can use."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import socket
import stat
from pathlib import Path

from sandbox.errors import SandboxUnavailable

BACKLOG = 512
# File descriptors kept free of connections: the listener, logs, and each running block's
# pipes, log file and cgroup files.
RESERVED_FDS = 64
FDS_PER_RUN = 16


def check_bind(*, host: str, token: str | None) -> None:
    """Refuse to listen on TCP without a token, loopback included (any local user could call)."""
    if not token:
        raise SandboxUnavailable(
            f"refusing to listen on {host} without a token: set OPSLOOP_SANDBOX_TOKEN, or "
            "serve on a unix socket only this user can reach (--socket PATH)"
        )


def raise_open_files_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_cap(*, wanted: int, open_files: int, concurrency: int) -> int:
    """At most ``wanted`` connections, leaving descriptors for running blocks and the rest."""
    spare = open_files - RESERVED_FDS - FDS_PER_RUN * concurrency
    return max(8, min(wanted, spare))


def unix_socket(path: Path) -> tuple[socket.socket, tuple[int, int]]:
    """A listening unix socket at ``path`` with mode 0600 (never more open, not even briefly).

    Returns the socket and the file's identity, for ``remove_socket``.
    """
    _check_directory(path.parent)
    _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        previous = os.umask(0o177)  # the socket is born 0600; chmod afterwards would race
        try:
            sock.bind(str(path))
        finally:
            os.umask(previous)
        info = os.lstat(path)
        if stat.S_IMODE(info.st_mode) != 0o600 or info.st_uid != os.geteuid():
            raise SandboxUnavailable(f"{path} did not come out as a 0600 socket of ours")
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise SandboxUnavailable(f"cannot listen on {path}: {exc.strerror or exc}") from None
    except BaseException:
        sock.close()
        raise
    return sock, (info.st_dev, info.st_ino)


def remove_socket(path: Path, identity: tuple[int, int]) -> None:
    """Delete the socket file at ``path`` if it is still the one we created."""
    with contextlib.suppress(OSError):
        info = os.lstat(path)
        if (info.st_dev, info.st_ino) == identity:
            path.unlink()


def _check_directory(directory: Path) -> None:
    """Refuse a directory where someone else could swap the socket for their own."""
    try:
        info = os.stat(directory)
    except OSError as exc:
        raise SandboxUnavailable(f"cannot use {directory}: {exc.strerror}") from None
    shared = info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX
    if shared or info.st_uid not in (0, os.geteuid()):
        raise SandboxUnavailable(
            f"{directory} can be written by other users, who could replace the socket: "
            "use a directory only this user can write (e.g. /run/opsloop, mode 0755)"
        )


def _remove_stale(path: Path) -> None:
    """Delete a socket left by a service that is gone; refuse anything else at ``path``."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise SandboxUnavailable(f"{path} exists and is not a socket; remove it or pick another")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError as exc:
            if exc.errno != errno.ECONNREFUSED:
                raise SandboxUnavailable(f"cannot use {path}: {exc.strerror}") from None
        else:
            raise SandboxUnavailable(f"another process is already listening on {path}")
    path.unlink()
