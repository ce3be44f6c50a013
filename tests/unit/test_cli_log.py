"""The event-log commands' argument parsing and their one-line errors (in process)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import pytest

from bot.cli import main
from bot.cli.log import parse_when
from bot.errors import ConfigError

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_times_are_iso_dates_or_ages() -> None:
    assert parse_when("7d", now=NOW) == NOW - timedelta(days=7)
    assert parse_when("90m", now=NOW) == NOW - timedelta(minutes=90)
    assert parse_when("2026-11-30", now=NOW) == datetime(2026, 11, 30, tzinfo=UTC)
    assert parse_when("2026-11-30T08:00+01:00", now=NOW) == datetime(2026, 11, 30, 7, tzinfo=UTC)
    assert parse_when(None) is None


def test_an_unreadable_time_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="ISO 8601"):
        parse_when("yesterday")


def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["opsloop", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    out, err = capsys.readouterr()
    return int(exit_.value.code or 0), out, err


def test_verify_needs_an_id_or_all(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", "memory:")
    code, _, err = run(monkeypatch, capsys, "audit", "verify")
    assert code != 0
    assert (
        err.strip()
        == "opsloop: give a conversation id (or a prefix of one), or --all for every one"
    )
    code, _, err = run(monkeypatch, capsys, "audit", "verify", "1b51", "--all")
    assert code != 0 and err.strip() == "opsloop: give a conversation id or --all, not both"


def test_an_empty_store_lists_nothing_and_verifies_intact(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", "memory:")
    monkeypatch.setattr(sys, "argv", ["opsloop", "conversations"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code in (0, None)
    assert capsys.readouterr().out.strip() == "no conversations"
    code, out, _ = run(monkeypatch, capsys, "audit", "verify", "--all")
    assert code == 0 and out.startswith("intact: 0 conversation(s)")


def test_an_unknown_format_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", "memory:")
    code, _, err = run(monkeypatch, capsys, "replay", "abcd", "--format", "yaml")
    assert code != 0 and "unknown format 'yaml'" in err and "Traceback" not in err
