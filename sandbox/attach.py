"""Attaching a workspace to a prestarted kernel's jail: a mount handed over, never a path.

A prestarted jail (``sandbox.kernels``) starts with an empty placeholder at ``/workspace``
and the uid its workspace will get. When a new conversation takes it, the host clones the
workspace's mount (``open_tree(OPEN_TREE_CLONE)``: a detached copy of that one mount, with
its ``nosuid,nodev``) and moves it onto the jail's ``/workspace`` from inside the jail's
mount namespace (``setns``, then ``move_mount``). Both calls are the host's, as root: the
jail has no capability and its seccomp policy refuses ``open_tree``, ``move_mount`` and
``setns``. The jail has run no code of a block yet when this happens, so the namespace the
host enters holds nothing a block made.

``setns`` into a mount namespace needs a thread whose filesystem attributes are its own, so
it runs in a thread of its own that first ``unshare(CLONE_FS)``s and then ends: the rest of
the process never leaves its namespace.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
from pathlib import Path

from sandbox.errors import SandboxUnavailable

SYS_OPEN_TREE = 428  # the same number on every architecture (the new syscalls' common table)
SYS_MOVE_MOUNT = 429
OPEN_TREE_CLONE = 1
AT_SYMLINK_NOFOLLOW = 0x100
MOVE_MOUNT_F_EMPTY_PATH = 0x4
CLONE_FS = 0x200
CLONE_NEWNS = 0x20000
AT_FDCWD = -100
TARGET = b"/workspace"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


def clone_mount(path: Path) -> int:
    """A detached copy of the mount at ``path`` (an fd); the path itself is not followed."""
    libc = _libc()
    flags = OPEN_TREE_CLONE | os.O_CLOEXEC | AT_SYMLINK_NOFOLLOW
    return _check(libc.syscall(SYS_OPEN_TREE, AT_FDCWD, os.fsencode(path), flags), "open_tree")


def _attach_in_thread(tree: int, namespace: int, errors: list[BaseException]) -> None:
    try:
        libc = _libc()
        _check(libc.unshare(CLONE_FS), "unshare(CLONE_FS)")
        _check(libc.setns(namespace, CLONE_NEWNS), "setns")
        _check(
            libc.syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, TARGET, MOVE_MOUNT_F_EMPTY_PATH),
            "move_mount",
        )
    except BaseException as exc:  # noqa: BLE001 (handed to the caller)
        errors.append(exc)


def attach_workspace(path: Path, *, kernel_pid: int) -> None:
    """Mount the workspace at ``path`` on ``/workspace`` of the jail whose init is
    ``kernel_pid`` (blocking: a thread of its own does it)."""
    namespace = os.open(f"/proc/{kernel_pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        tree = clone_mount(path)
        try:
            errors: list[BaseException] = []
            worker = threading.Thread(
                target=_attach_in_thread, args=(tree, namespace, errors), name="attach"
            )
            worker.start()
            worker.join()
            if errors:
                raise errors[0]
        finally:
            os.close(tree)
    finally:
        os.close(namespace)


async def attach(path: Path, *, kernel_pid: int) -> None:
    """``attach_workspace`` off the event loop; ``SandboxUnavailable`` when it cannot."""
    try:
        await asyncio.to_thread(attach_workspace, path, kernel_pid=kernel_pid)
    except OSError as exc:
        raise SandboxUnavailable(
            f"cannot attach the workspace to a prestarted jail: {exc}"
        ) from None
