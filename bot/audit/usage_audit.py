"""The usage ledger checked against the replies it counts.

The ledger (``opsloop_usage``, bot/app/usage.py) is what the daily budgets and ``opsloop
usage`` read: one row per ``ModelReplied``. Like the listing it is a table an operator can
edit, and an edit there is worse than a wrong listing: a deleted or cheapened row lets a
person spend past their budget. The audit folds the verified events again, with the ledger's
own fold, and compares every row up to the position the ledger says it has folded: a row
missing, edited or with no reply behind it is the ledger's fault, reported as such, never as
an edited event; a ledger merely behind the log is not a problem.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from bot.app.usage import fold
from bot.audit.findings import Problem
from bot.audit.listing_audit import same_value
from bot.audit.scan import Decoded, Item

COMPARED = ("day", "platform", "channel", "user_id", "provider", "model", "input_tokens",
            "output_tokens", "cost")  # fmt: skip
_NAMES = ("conversation_id", "version", "at", *COMPARED)


def usage_problems(
    decoded: Decoded,
    intact: dict[UUID, list[Item]],
    ledger: dict[tuple[UUID, int], dict[str, Any]],
    position: int,
) -> list[Problem]:
    """Problems of the ledger rows of the conversations in ``intact`` (whose events verified);
    ``position``: how far the ledger says it has folded the log."""
    problems: list[Problem] = []
    for cid, items in intact.items():
        expected = _expected(decoded(cid, items), items)
        if expected is None:
            continue
        for version, (at, want) in expected.items():
            row = ledger.get((cid, version))
            if row is None:
                if at <= position:
                    problems.append(_problem(cid, version, "was deleted (the event is intact)"))
                continue
            wrong = [c for c in COMPARED if not same_value(row.get(c), want[c])]
            if wrong:
                col = wrong[0]
                problems.append(
                    _problem(
                        cid,
                        version,
                        f"was edited: {col} is {row.get(col)!r} but its event says "
                        f"{want[col]!r} (the event is intact)",
                    )
                )
    return problems


def inserted(
    ledger: dict[tuple[UUID, int], dict[str, Any]],
    log: dict[UUID, list[Item]],
    blamed: set[UUID],
) -> list[Problem]:
    """Ledger rows with no ``ModelReplied`` behind them in the log, except in conversations
    whose events are already blamed (an event removed is not the ledger's fault)."""
    replies = {
        (cid, i.version)
        for cid, items in log.items()
        for i in items
        if i.type_name == "ModelReplied"
    }
    return [
        _problem(cid, version, "has no ModelReplied behind it: it was inserted")
        for cid, version in sorted(ledger, key=str)
        if (cid, version) not in replies and cid not in blamed
    ]


def _expected(
    events: list[Any] | None, items: list[Item]
) -> dict[int, tuple[int, dict[str, Any]]] | None:
    """Each reply's ledger row as the ledger's own fold makes it, with its log position."""
    if events is None:
        return None
    authors: dict[str, dict[str, Any]] = {}
    out: dict[int, tuple[int, dict[str, Any]]] = {}
    for item, event in zip(items, events, strict=True):
        row = fold(authors, event)
        if row is not None:
            out[item.version] = (item.position, dict(zip(_NAMES, row, strict=True)))
    return out


def _problem(cid: UUID, version: int, reason: str) -> Problem:
    return Problem(cid, version, "ModelReplied", reason, kind="usage")
