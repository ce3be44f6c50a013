"""The pipes of a kernel's jail, as the host reads and writes them (``sandbox.kernel``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

CHUNK = 64 * 1024


class OutputPipe:
    """One output pipe of the kernel, read as it comes into the current block's capture."""

    def __init__(self, fd: int, on_stray: Callable[[], None]) -> None:
        self.fd = fd
        self.on_stray = on_stray
        self.kept = bytearray()
        self.limit = 0
        self.truncated = False
        self.capturing = False
        self.eof = False
        os.set_blocking(fd, False)
        asyncio.get_running_loop().add_reader(fd, self.pump, 16)

    def begin(self, limit: int) -> None:
        self.pump(None)
        self.kept, self.limit, self.truncated, self.capturing = bytearray(), limit, False, True

    def end(self) -> tuple[bytes, bool]:
        """Everything written before now (the kernel wrote it before DONE), and the cap hit."""
        self.pump(None)
        self.capturing = False
        return bytes(self.kept), self.truncated

    def pump(self, most: int | None) -> None:
        reads = 0
        while not self.eof and (most is None or reads < most):
            reads += 1
            try:
                chunk = os.read(self.fd, CHUNK)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.close()
                return
            if not self.capturing:
                self.on_stray()
                continue
            room = self.limit - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]
            if len(chunk) > room:
                self.truncated = True

    def close(self) -> None:
        if not self.eof:
            self.eof = True
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.fd)


def new_nonce() -> bytes:
    """A kernel's nonce: 32 hex digits."""
    return secrets.token_hex(16).encode()


def control_pipes() -> tuple[tuple[int, int], tuple[int, int]]:
    """(host writes, kernel reads) and (kernel writes, host reads); the host's ends close on
    exec, the kernel's are passed to its jail."""
    down_read, down_write = os.pipe()
    up_read, up_write = os.pipe()
    return (down_read, down_write), (up_read, up_write)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def stat_fields(pid: int | None) -> tuple[int, int, int, int] | None:
    """utime, stime, cutime, cstime of ``pid`` (clock ticks), from /proc/<pid>/stat."""
    if pid is None:
        return None
    try:  # os.open/os.read: a third of Path.read_text's cost, once or twice a block
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        text = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    fields = text.rpartition(b")")[2].split()
    try:
        return int(fields[11]), int(fields[12]), int(fields[13]), int(fields[14])
    except (IndexError, ValueError):
        return None


def read_count(fd: int) -> int | None:
    """A number file kept open (a cgroup's ``pids.current``), read again from its start."""
    try:
        return int(os.pread(fd, 64, 0))
    except (OSError, ValueError):
        return None


def parent_of(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return int(fields[1])
    except (OSError, IndexError, ValueError):
        return None
