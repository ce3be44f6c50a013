from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot import settings as settings_module
from bot.settings import SYSTEM_DATA_DIR, Settings, default_data_dir


def test_root_keeps_its_data_where_the_jail_user_can_reach_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings_module.os, "geteuid", lambda: 0)
    assert default_data_dir() == SYSTEM_DATA_DIR
    # Every directory above it must be searchable by "other", or no workspace works.
    for part in [SYSTEM_DATA_DIR.parent, *SYSTEM_DATA_DIR.parent.parents]:
        assert os.stat(part).st_mode & 0o001, f"{part} is not searchable by other users"


def test_a_normal_user_keeps_its_data_in_the_user_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(settings_module.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / "opsloop"


def test_the_default_event_store_is_a_sqlite_file_in_the_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("OPSLOOP_DATABASE_URL", raising=False)
    monkeypatch.setenv("OPSLOOP_DATA_DIR", str(tmp_path))
    assert Settings().resolved_database_url() == f"sqlite:///{tmp_path / 'opsloop.sqlite3'}"
