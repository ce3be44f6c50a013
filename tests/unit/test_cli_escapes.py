"""The commands print stored, model and server text as data (in process, no sandbox needed).

``opsloop conversations``, ``replay``, ``audit verify``, ``ask``, ``resume`` and ``doctor``
against a SQLite file holding a hostile conversation, and the one-line error of ``main``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
from pathlib import Path

import pytest

import bot.cli
from bot.app.application import open_app
from bot.cli import main
from bot.cli.doctor import Check, render
from bot.errors import OpsloopError
from bot.surface import Coordinates
from bot.visible import VisibleFormatter
from tests.hostile import ATTACK, ERASE, SHOWN, record_hostile_conversation

RAW = ("\x1b", "\x9b", "\u202e", "\x07", "\r")
# TOML spells the attack with \u escapes; the scripted model answers it without a block.
SCRIPT = 'turns = ["It says \\u001b]0;owned\\u0007\\u001b[2J\\u009b2J\\u202eexe"]'
DOWN = 'turns = [{unavailable = "503 \\u001b]0;owned\\u0007 \\u202eexe"}]'


def assert_no_raw(text: str) -> None:
    for raw in RAW:
        assert raw not in text, f"{raw!r} was printed"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "opsloop.sqlite3"
    app = open_app(database_url=f"sqlite:///{path}")
    try:
        record_hostile_conversation(app)
    finally:
        app.close()
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("OPSLOOP_DATA_DIR", str(tmp_path))
    return path


def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["opsloop", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    out, err = capsys.readouterr()
    return int(exit_.value.code or 0), out, err


def test_the_conversation_list_shows_channels_and_authors_visibly(
    store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(monkeypatch, capsys, "conversations")
    assert code == 0
    assert_no_raw(out)
    assert f"alice{SHOWN}" in out and SHOWN[:12] in out  # the author, the cut channel


def test_the_conversation_list_in_json_has_exact_values_and_no_raw_characters(
    store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(monkeypatch, capsys, "conversations", "--format", "json")
    assert code == 0
    assert_no_raw(out)
    assert json.loads(out)["started_by"] == f"alice{ATTACK}"


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_the_replay_command_prints_no_raw_control_character(
    store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    code, out, _ = run(monkeypatch, capsys, "replay", "4", "--format", fmt)
    assert code == 0 and "answer" in out.lower()
    assert_no_raw(out)


def test_a_tampered_event_type_cannot_erase_the_tampered_line(
    store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(store) as db:
        db.execute(
            "UPDATE stored_events SET topic = ? WHERE originator_version = 2",
            (f"domain.events:MessageReceived{ERASE}all intact\n",),
        )
    code, out, _ = run(monkeypatch, capsys, "audit", "verify", "--all")
    assert code == 1
    assert out.startswith("TAMPERED conversation ") and out.count("\n") == 1
    assert "event 2 (MessageReceived␛[1A␛[2K␍all intact␊) was altered" in out
    assert_no_raw(out)


def test_the_one_line_error_shows_a_servers_text_visibly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing() -> None:
        raise OpsloopError(f"the model server said {ATTACK}")

    monkeypatch.setattr(bot.cli, "app", failing)
    with pytest.raises(SystemExit):
        main()
    err = capsys.readouterr().err
    assert err == f"opsloop: the model server said {SHOWN}\n"


def test_warnings_of_commands_without_logging_setup_are_logged_visibly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert logging.lastResort is not None
    monkeypatch.setattr(logging.lastResort, "formatter", None)
    monkeypatch.setattr(bot.cli, "app", lambda: None)
    main()
    assert isinstance(logging.lastResort.formatter, VisibleFormatter)


@pytest.fixture
def scripted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "script.toml").write_text(SCRIPT, encoding="utf-8")
    (tmp_path / "down.toml").write_text(DOWN, encoding="utf-8")
    monkeypatch.setenv("OPSLOOP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", f"sqlite:///{tmp_path / 'ask.sqlite3'}")
    monkeypatch.setenv("OPSLOOP_PROVIDER", "scripted")
    monkeypatch.setenv("OPSLOOP_MODEL", str(tmp_path / "script.toml"))
    return tmp_path


def test_ask_prints_the_models_answer_visibly(
    scripted: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(monkeypatch, capsys, "ask", "what does it say?")
    assert code == 0
    assert out == "It says ␛]0;owned␇␛[2J\\x9b2J<U+202E>exe\n"


def test_ask_json_keeps_the_exact_answer_without_raw_characters(
    scripted: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(monkeypatch, capsys, "ask", "what does it say?", "--json")
    assert code == 0
    assert_no_raw(out)
    assert json.loads(out)["answer"] == "It says \x1b]0;owned\x07\x1b[2J\x9b2J\u202eexe"


def test_ask_shows_a_down_models_error_visibly(
    scripted: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPSLOOP_MODEL", str(scripted / "down.toml"))
    code, out, err = run(monkeypatch, capsys, "ask", "anyone there?")
    assert code == 1 and out == ""
    assert_no_raw(err)
    assert "503 ␛]0;owned␇ <U+202E>exe" in err


def test_resume_names_another_platforms_conversations_visibly(
    scripted: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app = open_app(database_url=f"sqlite:///{scripted / 'ask.sqlite3'}")
    try:
        where = Coordinates(f"x{ATTACK}[link=https://evil.example]y[/link]", "w", "c", "t")
        app.receive_message(coordinates=where, message_key="k", author="a", text="left open")
    finally:
        app.close()
    monkeypatch.setenv("COLUMNS", "300")
    code, out, _ = run(monkeypatch, capsys, "resume")
    assert code == 0
    assert_no_raw(out)
    assert f"1 interrupted x{SHOWN}[link=https://evil.example]y[/link] conversation(s)" in out


def test_doctor_shows_a_servers_error_page_visibly() -> None:
    page = f"502 Bad Gateway\n{ATTACK}"
    text = render([Check("model", False, page, "start Ollama")])
    assert_no_raw(text)
    assert text.splitlines()[0] == f"FAIL model: 502 Bad Gateway␊{SHOWN}"
