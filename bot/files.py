"""Files and directories opsloop creates for itself are private to its user.

The event database holds every message, block and output; the chat history every line
typed. They are created ``0600``, whatever the umask (SQLite gives its ``-wal`` and ``-shm``
files the database file's mode). Directories opsloop creates are ``0700``, or ``0711`` when
it runs as root: then blocks run as other users (nobody, a uid per workspace), which must be
able to pass through the data directory to reach their workspace, though not list it.
Existing files and directories keep the mode their owner gave them.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600


def dir_mode() -> int:
    """The mode of a directory opsloop creates: 0700, or 0711 as root (see above)."""
    return 0o711 if hasattr(os, "geteuid") and os.geteuid() == 0 else 0o700


def private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents with ``dir_mode()``; existing ones stay as
    they are. Raises ``OSError`` as ``mkdir`` does (a file in the way, a full disk …)."""
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    mode = dir_mode()
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=mode)
        except FileExistsError:  # another process made it meanwhile
            continue
        os.chmod(directory, mode)  # mkdir's mode is filtered by the umask; this is not


def private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; True when it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)  # a umask can only take bits away from 0600
    return True
