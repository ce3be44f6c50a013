"""``opsloop usage``: its table, and its one-line errors for bad input (in process)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import pytest

from bot.app.usage import UsageRow
from bot.cli import main
from bot.cli.usage import usage_lines

ROWS = [
    UsageRow(by="user", key="slack:U012AB", turns=3, input_tokens=12_000, output_tokens=800,
             cost=2.13),
    UsageRow(by="user", key="discord:4242", turns=1, input_tokens=500, output_tokens=20,
             cost=0.0042),
]  # fmt: skip


def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", "memory:")
    monkeypatch.setattr(sys, "argv", ["opsloop", "usage", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    out, err = capsys.readouterr()
    return int(exit_.value.code or 0), out, err


def test_the_table_has_a_line_per_key_and_a_total() -> None:
    lines = usage_lines(ROWS, by="user", since=datetime(2026, 11, 18, 9, 30, tzinfo=UTC))

    assert lines[0] == "model spend by user since 2026-11-18 09:30 UTC"
    assert lines[1].split() == ["user", "turns", "tokens", "in", "tokens", "out", "cost", "USD"]
    assert lines[2].split() == ["slack:U012AB", "3", "12,000", "800", "2.1300"]
    assert lines[3].split() == ["discord:4242", "1", "500", "20", "0.0042"]
    assert lines[4].split() == ["total", "4", "12,500", "820", "2.1342"]
    assert len({len(line) for line in lines[1:]}) == 1  # the columns line up


def test_no_spend_is_one_line_saying_so() -> None:
    assert usage_lines([], by="model", since=None) == ["no model spend since the log began"]


def test_an_empty_log_prints_no_spend_and_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(monkeypatch, capsys, "--by", "day", "--since", "7d")
    assert code == 0 and out.startswith("no model spend since ")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--by", "team"), "unknown --by 'team': use one of user, channel, model, day"),
        (("--format", "xml"), "unknown format 'xml'"),
        (("--since", "yesterday"), "cannot read the time 'yesterday'"),
        (("--since", "2026-13-01"), "cannot read the time '2026-13-01'"),
        (("--since", "99999999999d"), "that age is too long"),
        (("--since", "9" * 5000 + "d"), "that age is too long"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_never_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    fragment: str,
) -> None:
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("opsloop: ") and fragment in err


def test_names_from_the_store_cannot_drive_the_terminal() -> None:
    row = UsageRow(by="user", key="slack:\x1b]52;c;aGk=\x07U1", turns=1, input_tokens=1,
                   output_tokens=1, cost=0.5)  # fmt: skip

    text = "\n".join(usage_lines([row], by="user", since=None))

    assert "\x1b" not in text and "\x07" not in text and "␛" in text
