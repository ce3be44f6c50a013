"""``opsloop usage`` on a real SQLite file: text and JSON by each ``--by``, and ``--since``.

The spend is recorded through the application's own commands (tests/spend.py); the command
runs in process through ``bot.cli.main``, the way the console script does.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest

from bot.app.application import open_app
from tests.spend import spend, where


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite file with three replies: two people, two channels, two models."""
    url = f"sqlite:///{tmp_path}/events.sqlite3"
    app = open_app(database_url=url)
    try:
        spend(app, author="U1", at=where("C1", "1"), cost=1.0, input_tokens=1000)
        spend(app, author="U2", at=where("C1", "2"), cost=3.0, model="gpt-4o")
        spend(app, author="U1", at=where("C2", "3"), cost=0.5, provider="groq", model="llama")
    finally:
        app.close()
    return url


def opsloop(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str, *args: str
) -> tuple[int, str, str]:
    from bot.cli import main

    monkeypatch.setenv("OPSLOOP_DATABASE_URL", url)
    monkeypatch.setattr(sys, "argv", ["opsloop", "usage", *args])
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


EXPECTED = {
    "user": [("slack:U2", 1, 3.0), ("slack:U1", 2, 1.5)],
    "channel": [("slack:C1", 2, 4.0), ("slack:C2", 1, 0.5)],
    "model": [("openai:gpt-4o", 1, 3.0), ("openai:gpt-4o-mini", 1, 1.0), ("groq:llama", 1, 0.5)],
}


@pytest.mark.parametrize("by", ["user", "channel", "model"])
def test_usage_as_json_is_one_object_a_line_largest_cost_first(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str, by: str
) -> None:
    code, out, err = opsloop(monkeypatch, capsys, url, "--by", by, "--format", "json")

    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0, err
    assert [(r["key"], r["turns"], r["cost"]) for r in rows] == EXPECTED[by]
    assert all(
        r["by"] == by and r["tokens"] == r["input_tokens"] + r["output_tokens"] for r in rows
    )


@pytest.mark.parametrize("by", ["user", "channel", "model"])
def test_usage_as_text_is_a_table_with_a_total(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str, by: str
) -> None:
    code, out, _ = opsloop(monkeypatch, capsys, url, "--by", by)

    lines = out.splitlines()
    assert code == 0 and lines[0] == f"model spend by {by} since the log began"
    assert [line.split()[0] for line in lines[2:]] == [k for k, _, _ in EXPECTED[by]] + ["total"]
    assert lines[-1].split()[-1] == "4.5000"


def test_usage_by_day_is_one_line_per_utc_day(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    _, text, _ = opsloop(monkeypatch, capsys, url, "--by", "day")
    code, out, _ = opsloop(monkeypatch, capsys, url, "--by", "day", "-f", "json")

    (row,) = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and row["turns"] == 3 and row["cost"] == 4.5
    assert row["input_tokens"] == 1200 and row["output_tokens"] == 30
    assert text.splitlines()[2].split()[:2] == [row["key"], "3"]


def test_since_counts_only_replies_at_or_after_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    app = open_app(database_url=url)
    try:
        last = app.list_conversations()[0]  # the most recently active: U1's reply in C2
        stamps = [e["timestamp"] for e in app.timeline(UUID(str(last.conversation_id)))]
    finally:
        app.close()
    replied = stamps[2]  # Started, MessageReceived, ModelReplied

    code, out, _ = opsloop(monkeypatch, capsys, url, "--since", replied, "-f", "json")
    _, week, _ = opsloop(monkeypatch, capsys, url, "--since", "7d", "-f", "json")
    _, hours, _ = opsloop(monkeypatch, capsys, url, "--since", "24h", "-f", "json")
    _, tomorrow, _ = opsloop(monkeypatch, capsys, url, "--since", _day_after(replied))

    assert code == 0
    assert [json.loads(line)["key"] for line in out.splitlines()] == ["slack:U1"]
    assert [json.loads(line)["cost"] for line in out.splitlines()] == [0.5]
    assert len(week.splitlines()) == 2 and len(hours.splitlines()) == 2
    assert tomorrow.startswith("no model spend since ")


def _day_after(stamp: str) -> str:
    return (datetime.fromisoformat(stamp) + timedelta(days=1)).date().isoformat()
