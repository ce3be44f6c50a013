"""Comparing the log with a checkpoint taken before: what was removed, inserted or moved.

Edits are found by the seals (``bot.audit.verify``); what a seal cannot see -- a tail cut off,
a whole conversation removed with its listing row, a conversation slipped in, the log's
order changed -- is found here, against the per-conversation heads and the global chain head
the checkpoint signed.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from bot.audit.findings import Problem
from bot.audit.scan import Item, Scan
from domain.seal import GLOBAL_GENESIS


def against(scan: Scan, cp: dict[str, Any], name: str) -> list[Problem]:
    """Problems of the log up to the checkpoint's position (one per conversation at most)."""
    when = cp.get("time", "?")
    position = int(cp["position"])
    rows = scan.by_conversation()
    problems: list[Problem] = []
    for cid_text, (version, digest) in cp["heads"].items():
        problem = _head(UUID(cid_text), int(version), str(digest), rows, when)
        if problem:
            problems.append(problem)
    covered = [i for i in scan.items if i.position <= position]
    known = {UUID(c) for c in cp["heads"]}
    for cid in dict.fromkeys(i.conversation_id for i in covered):
        if cid not in known:
            first = next(i for i in covered if i.conversation_id == cid)
            problems.append(
                Problem(
                    cid,
                    first.version,
                    first.type_name,
                    f"was inserted: it sits at position {first.position}, which the checkpoint "
                    f"of {when} covers, but that checkpoint knows no such conversation",
                )
            )
    head = covered[-1].global_head if covered else GLOBAL_GENESIS
    if not problems and head != cp["global_head"]:
        problems.append(_order_problem(covered, cp, name, position))
    return problems


def _head(
    cid: UUID, version: int, digest: str, rows: dict[UUID, list[Item]], when: str
) -> Problem | None:
    items = rows.get(cid, [])
    if not items:
        return Problem(
            cid,
            1,
            "",
            f"is missing: the whole conversation ({version} events) was removed "
            f"after the checkpoint of {when}",
        )
    at = next((i for i in items if i.version == version), None)
    if at is None:
        last = items[-1].version
        return Problem(
            cid,
            last + 1,
            "",
            f"is missing: the log ends at version {last} but the checkpoint of {when} "
            f"recorded {version} events (the tail was removed)",
        )
    if at.digest != digest:
        return Problem(cid, version, at.type_name, f"differs from the checkpoint of {when}")
    return None


def _order_problem(covered: list[Item], cp: dict[str, Any], name: str, position: int) -> Problem:
    events = int(cp.get("events", -1))
    if events >= 0 and len(covered) != events:
        reason = (
            f"the log up to position {position} holds {len(covered)} events but the "
            f"checkpoint {name} counted {events}"
        )
    else:
        reason = (
            f"the order of the log up to position {position} differs from the checkpoint "
            f"{name}: events were moved between positions"
        )
    return Problem(None, 0, "", reason, kind="log")
