"""Workspaces as loop-mounted ext4 images: hard caps on bytes and inodes, mounted nosuid,nodev.

Each workspace is a sparse file holding its own ext4 filesystem (no journal, no reserved
blocks), sized to the byte cap and made with exactly as many inodes as the file cap allows.
The kernel then enforces both caps on every write, however the block hides its data: paths
deeper than ``PATH_MAX``, 100,000 empty files, files deleted while still open. Mounted
``nosuid,nodev`` (and kept that way inside the jail: a user namespace cannot clear locked
mount flags), nothing planted there can raise anyone's privileges. Usage is one ``statvfs``.

Images need root (loop devices and ``mount``), ``mkfs.ext4`` (e2fsprogs) and util-linux's
``mount``, which reuses the loop device of an image that is still attached, so an image is
never attached twice. Everything runs through ``sandbox.process.run_tool``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sandbox.errors import SandboxUnavailable
from sandbox.process import run_tool

TOOL_PATH = "/usr/sbin:/sbin:/usr/bin:/bin"
MOUNT_OPTIONS = "loop,nosuid,nodev,noatime,discard"
INODE_BYTES = 256
RESERVED_INODES = 11  # ext4's own: root, journal, resize … (lost+found is removed)


def _tool(name: str) -> str | None:
    return shutil.which(name, path=TOOL_PATH)


def unavailable_reason() -> str | None:
    """Why image workspaces cannot be used on this host, or None when they can."""
    if os.geteuid() != 0:
        return "image workspaces need root (loop devices and mount)"
    if _tool("mkfs.ext4") is None:
        return "mkfs.ext4 is missing (install e2fsprogs)"
    if _tool("mount") is None or _tool("umount") is None:
        return "mount/umount are missing (install util-linux's mount)"
    if not os.path.exists("/dev/loop-control"):
        return "there are no loop devices here (/dev/loop-control is missing)"
    return None


def image_size(*, quota_bytes: int, files: int) -> int:
    """Bytes of an image whose free space is about ``quota_bytes`` (inode tables on top)."""
    return quota_bytes + (files + RESERVED_INODES) * INODE_BYTES


def inodes_to_ask(files: int) -> int:
    """mkfs rounds the inode count to whole inode-table blocks per group (about 1%, either
    way): ask a little more so the cap is never below ``files``."""
    return files + RESERVED_INODES + files // 100 + 16


def create(image: Path, *, quota_bytes: int, files: int, owner: tuple[int, int]) -> None:
    """Make a new image at ``image`` whose root directory belongs to ``owner``."""
    fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.ftruncate(fd, image_size(quota_bytes=quota_bytes, files=files))
    finally:
        os.close(fd)
    uid, gid = owner
    done = run_tool(
        [
            _tool("mkfs.ext4") or "mkfs.ext4",
            "-q",
            "-F",
            "-O",
            "^has_journal",
            "-m",
            "0",
            "-I",
            str(INODE_BYTES),
            "-N",
            str(inodes_to_ask(files)),
            "-E",
            f"root_owner={uid}:{gid},nodiscard",
            "-L",
            "opsloop-ws",
            str(image),
        ]
    )
    if done.returncode != 0:
        image.unlink(missing_ok=True)
        raise SandboxUnavailable(f"cannot make a workspace image: {_last_line(done.output)}")


def mount(image: Path, mountpoint: Path) -> None:
    """Attach ``image`` at ``mountpoint`` (nosuid, nodev), removing ext4's lost+found."""
    done = run_tool(
        [_tool("mount") or "mount", "-t", "ext4", "-o", MOUNT_OPTIONS, str(image), str(mountpoint)]
    )
    if done.returncode != 0:
        raise SandboxUnavailable(f"cannot mount a workspace image: {_last_line(done.output)}")
    fd = os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:  # ext4 makes it root's: unusable by the jail, and not the block's business
        os.rmdir("lost+found", dir_fd=fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def unmount(mountpoint: Path) -> str | None:
    """Detach the image at ``mountpoint``; None when done, else umount's complaint."""
    done = run_tool([_tool("umount") or "umount", str(mountpoint)])
    return None if done.returncode == 0 else _last_line(done.output)


def is_mounted(path: Path) -> bool:
    """True when ``path`` is a mount point (ours are never symlinks)."""
    return not path.is_symlink() and os.path.ismount(path)


def free(path: Path) -> tuple[int, int]:
    """(bytes, inodes) still free on the filesystem at ``path``."""
    found = os.statvfs(path)
    return found.f_bavail * found.f_frsize, found.f_favail


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


FS_KINDS = ("auto", "image", "directory")


def resolve_fs(wanted: str) -> str:
    """``auto`` as ``image`` where images work, else ``directory``; ``image`` or an error."""
    if wanted not in FS_KINDS:
        raise SandboxUnavailable(f"workspace_fs {wanted!r} is not one of {', '.join(FS_KINDS)}")
    reason = unavailable_reason() if wanted != "directory" else None
    if wanted == "image" and reason:
        raise SandboxUnavailable(f"workspace_fs = 'image' cannot work here: {reason}")
    return "directory" if wanted == "directory" or reason else "image"
