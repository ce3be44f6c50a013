"""What opsloop creates is its user's alone, and a mistyped store or config is one sentence."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bot.app.application import open_app
from bot.app.store import store_env
from bot.config import load_policy
from bot.errors import ConfigError, StoreUnreachable
from bot.files import dir_mode, private_dir, private_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_event_store_and_its_directory_are_private_whatever_the_umask(
    tmp_path: Path,
) -> None:
    old = os.umask(0o022)
    try:
        app = open_app(database_url=f"sqlite:///{tmp_path}/new/dir/events.db", create=True)
        app.close()
    finally:
        os.umask(old)
    assert mode(tmp_path / "new/dir/events.db") == 0o600
    assert mode(tmp_path / "new/dir") == dir_mode() and mode(tmp_path / "new") == dir_mode()
    assert dir_mode() in (0o700, 0o711)  # 0711 only as root, for the jail users to pass


def test_existing_files_and_directories_keep_their_owners_mode(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir(mode=0o750)
    (tmp_path / "d").chmod(0o750)
    (tmp_path / "f").write_text("")
    (tmp_path / "f").chmod(0o640)
    private_dir(tmp_path / "d")
    assert private_file(tmp_path / "f") is False
    assert mode(tmp_path / "d") == 0o750 and mode(tmp_path / "f") == 0o640


def test_the_chat_history_is_created_private(tmp_path: Path) -> None:
    from rich.console import Console

    from adapters.terminal.repl import ChatRepl
    from tests.fake_chat_service import FakeChatService

    history = tmp_path / "data" / "chat_history"
    repl = ChatRepl(service=FakeChatService(), console=Console(), history_file=history)
    repl._session()
    assert mode(history) == 0o600 and mode(history.parent) == dir_mode()


def test_a_store_whose_directory_does_not_exist_is_an_error_not_a_new_store(
    tmp_path: Path,
) -> None:
    with pytest.raises(StoreUnreachable, match="--create") as caught:
        store_env(f"sqlite:///{tmp_path}/typo/events.db")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "typo").exists()


def test_a_file_that_is_not_a_database_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("my notes\n")
    with pytest.raises(StoreUnreachable, match="is not a SQLite database"):
        store_env(f"sqlite:///{tmp_path}/notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "my notes\n"


def test_a_directory_as_the_database_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(StoreUnreachable, match="it is a directory"):
        store_env(f"sqlite:///{tmp_path}")


def test_a_config_file_that_is_a_directory_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_policy(tmp_path)


def test_a_config_file_that_is_not_utf8_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "opsloop.toml"
    path.write_bytes(b"[loop]\nmax_turns = 5 # \xff\xfe latin-1\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_policy(path)


@pytest.mark.parametrize("tokens", [-5, 0, 100])
def test_a_context_window_too_small_for_a_question_is_refused(tmp_path: Path, tokens: int) -> None:
    path = tmp_path / "opsloop.toml"
    path.write_text(f'[prompt]\ncontext_tokens = {{ "llama3.1" = {tokens} }}\n')
    with pytest.raises(ConfigError, match="context_tokens"):
        load_policy(path)


def test_a_boolean_where_a_number_belongs_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "opsloop.toml"
    path.write_text("[loop]\nturns_per_message = true\n")
    with pytest.raises(ConfigError, match="turns_per_message"):
        load_policy(path)
