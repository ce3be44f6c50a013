"""The SQLite event store's file, checked and made private before the library opens it.

- A URL whose directory does not exist is a mistake more often than a wish: a typo in
  ``OPSLOOP_DATABASE_URL`` would otherwise start a new, empty store and leave the real one
  unseen. Such a directory is created only when asked (``--create``) and for the default
  data directory.
- The file is created ``0600`` (``bot.files``), so the log is its owner's alone; SQLite
  gives ``-wal`` and ``-shm`` the same mode.
- Something that is not a SQLite database (a directory, a text file) is one clear sentence
  instead of the driver's traceback.
"""

from __future__ import annotations

from pathlib import Path

from bot.errors import StoreUnreachable
from bot.files import private_dir, private_file

HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite 3 database


def prepare(path: Path, *, create: bool) -> None:
    """Check that ``path`` can hold the event store and create it, private, when missing.

    ``create`` allows making its missing directories. Raises ``StoreUnreachable``."""
    if path.is_dir():
        raise StoreUnreachable(f"cannot open the SQLite database {path}: it is a directory")
    parent = path.parent
    if not parent.exists():
        if not create:
            raise StoreUnreachable(
                f"the directory {parent} of the SQLite database does not exist: check "
                "OPSLOOP_DATABASE_URL, or pass --create (ask, chat, serve) to start a new "
                "event store there"
            )
        _make(parent)
    elif not parent.is_dir():
        raise StoreUnreachable(
            f"cannot open the SQLite database {path}: {parent} is not a directory"
        )
    try:
        if private_file(path):
            return
        with open(path, "rb") as existing:
            start = existing.read(len(HEADER))
    except OSError as exc:
        raise StoreUnreachable(
            f"cannot open the SQLite database {path}: {exc.strerror or exc}"
        ) from None
    if start and start != HEADER:  # an empty file is a new database, as SQLite sees it
        raise StoreUnreachable(
            f"{path} is not a SQLite database: check OPSLOOP_DATABASE_URL (it names the "
            "event store's file)"
        )


def _make(directory: Path) -> None:
    try:
        private_dir(directory)
    except OSError as exc:
        raise StoreUnreachable(
            f"cannot create the directory {directory} of the SQLite database: {exc.strerror or exc}"
        ) from None
