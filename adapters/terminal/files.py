"""Files on the terminal: a local file attached (``ask --file``, ``/attach``), and the files an
answer carries saved under the data directory, their paths printed.

A local file is opened once (``O_NONBLOCK``, so a FIFO cannot hang the chat), checked to be
a regular file on the opened descriptor, and read at most to the cap plus one byte. Files
out are created ``O_EXCL|O_NOFOLLOW``, mode 0600, in a 0700 directory per conversation, under
a name not yet taken there.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from bot.errors import FileNotFetched
from bot.surface import Attachment
from sandbox.filenames import numbered, safe_name
from sandbox.files import OutboxFile

_READ = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def local_attachment(path: Path) -> Attachment:
    """A local file as an attachment (its size as ``stat`` says, read when fetched)."""
    try:
        size: int | None = path.stat().st_size
    except OSError:
        size = None

    async def fetch(most: int) -> bytes:
        return read_local(path, most)

    return Attachment(name=path.name, size=size, fetch=fetch)


def read_local(path: Path, most: int) -> bytes:
    """At most ``most`` + 1 bytes of regular file ``path`` (``FileNotFetched`` otherwise)."""
    try:
        fd = os.open(path, _READ)
    except OSError as exc:
        raise FileNotFetched(f"cannot open {path}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileNotFetched(f"{path} is not a regular file")
        os.set_blocking(fd, True)
        chunks, total = [], 0
        while total <= most:
            chunk = os.read(fd, min(1 << 20, most + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise FileNotFetched(f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def save_files(files: Sequence[OutboxFile], directory: Path) -> list[Path]:
    """Write each file under ``directory`` (made 0700) as a new 0600 file; their paths."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    saved = []
    for file in files:
        for name in numbered(safe_name(file.name)):
            try:
                fd = os.open(directory / name, _NEW, 0o600)
            except FileExistsError:
                continue
            try:
                view = memoryview(file.data)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(directory / name)
                raise
            os.close(fd)
            saved.append(directory / name)
            break
    return saved
