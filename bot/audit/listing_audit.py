"""The listing table checked against the events it summarises.

The listing (``opsloop_conversations``) is a cache the application keeps beside the events;
an operator can edit it like any table. The audit folds the verified events itself and
compares: a difference is the listing's fault -- reported as a listing problem, never as an
edited event -- and a listing that is merely behind the log is not a problem at all.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from bot.app.summary import COLUMNS, fold
from bot.audit.findings import Problem
from bot.audit.scan import Decoded, Item


def listing_problems(
    decoded: Decoded,
    rows: dict[UUID, list[Item]],
    listing: dict[UUID, dict[str, Any]],
    position: int,
) -> list[Problem]:
    """Problems of the listing rows of the conversations in ``rows`` (whose events verified)."""
    problems: list[Problem] = []
    for cid, items in rows.items():
        row = listing.get(cid)
        last = items[-1]
        if row is None:
            if last.position <= position:
                problems.append(
                    Problem(cid, 0, "", "was deleted (its events are intact)", kind="listing")
                )
            continue
        if int(row.get("version") or 0) > last.version:
            problems.append(
                Problem(
                    cid,
                    0,
                    "",
                    f"says {row['version']} events but the log holds {last.version}: events "
                    "were removed from the end, or the listing was edited (verify --against "
                    "a checkpoint tells which)",
                    kind="listing",
                )
            )
            continue
        if int(row.get("version") or 0) < last.version:
            continue  # behind the log: it catches up on its next query
        expected = _folded(decoded(cid, items))
        if expected is None:
            continue
        wrong = [c for c in COLUMNS if not same_value(row.get(c), expected.get(c))]
        if wrong:
            col = wrong[0]
            problems.append(
                Problem(
                    cid,
                    0,
                    "",
                    f"was edited: {col} is {row.get(col)!r} but its events say "
                    f"{expected.get(col)!r} (the events are intact)",
                    kind="listing",
                )
            )
    return problems


def _folded(events: list[Any] | None) -> dict[str, Any] | None:
    folded: dict[str, dict[str, Any]] = {}
    for e in events or ():
        fold(folded, e)
    return next(iter(folded.values()), None)


def same_value(stored: object, expected: object) -> bool:
    """A stored column equals the value folded from the events (floats within rounding)."""
    if isinstance(expected, float) or isinstance(stored, float):
        try:
            return abs(float(stored) - float(expected)) <= 1e-9 * max(1.0, abs(float(expected)))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    if stored is None or expected is None:
        return stored == expected
    return str(stored) == str(expected)
