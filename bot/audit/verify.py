"""Audit: recompute every conversation's hash chain from the stored events.

Verification reads the rows exactly as stored (decrypted and decompressed, never upcast),
checks that versions run 1, 2, 3 … without a gap, that the first event is ``Started`` and
starts from the conversation id, and that each event's ``prev_hash`` is the hash of the
stored event before it. A chain only vouches for an event through its successor, so the
last event is checked against the head hash the read model saw when it folded that event.

When event *i* does not link to event *i-1*, either *i-1* was altered or *i*'s ``prev_hash``
was; if event *i+1* still links to *i*, then *i* is intact and *i-1* is named as the bad one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from bot.errors import NotFound, OpsloopError
from domain.chain import event_hash, genesis_hash

if TYPE_CHECKING:
    from eventsourcing.persistence import ApplicationRecorder

    from bot.app.readmodel import ReadModel
    from bot.app.store import CheckedMapper


@dataclass(frozen=True)
class Problem:
    """The first bad event of one conversation."""

    conversation_id: UUID
    version: int
    event_type: str
    reason: str

    def __str__(self) -> str:
        kind = f" ({self.event_type})" if self.event_type else ""
        return f"conversation {self.conversation_id}: event {self.version}{kind} {self.reason}"


@dataclass(frozen=True)
class VerifyReport:
    """What ``audit verify`` found."""

    conversations: int
    events: int
    problems: tuple[Problem, ...]

    @property
    def intact(self) -> bool:
        """True when no problem was found."""
        return not self.problems


@dataclass(frozen=True)
class _Row:
    version: int
    type_name: str
    state: dict[str, Any] | None  # None: undecodable


def _type_name(topic: str) -> str:
    return topic.rsplit(":", 1)[-1].rsplit(".", 1)[-1]


def _hash(row: _Row) -> str:
    assert row.state is not None
    return event_hash(
        type_name=row.type_name,
        version=row.version,
        timestamp=row.state["timestamp"],
        payload=row.state,
    )


def _links(prev_hash: str, row: _Row) -> bool:
    return row.state is not None and row.state.get("prev_hash") == prev_hash


@dataclass(frozen=True)
class AuditSource:
    """What verifying reads: the stored events, how to decode them, and the listing."""

    recorder: ApplicationRecorder
    mapper: CheckedMapper
    readmodel: ReadModel


def verify_log(source: AuditSource, conversation_id: UUID | None = None) -> VerifyReport:
    """Verify one conversation, or every conversation in the store."""
    with contextlib.suppress(OpsloopError):  # a damaged log may stop the read model early
        source.readmodel.catch_up()  # (it keeps the head hashes the chain cannot vouch for)
    ids = [conversation_id] if conversation_id is not None else _all_ids(source)
    problems, events = [], 0
    for cid in ids:
        count, problem = _verify_one(source, cid)
        if count == 0 and problem is None:
            raise NotFound(f"no conversation {cid}")
        events += count
        if problem:
            problems.append(problem)
    return VerifyReport(conversations=len(ids), events=events, problems=tuple(problems))


def _all_ids(app: AuditSource) -> list[UUID]:
    seen: dict[UUID, None] = {}
    position = 0
    while True:
        notes = app.recorder.select_notifications(
            start=position, limit=1000, inclusive_of_start=False
        )
        for n in notes:
            seen.setdefault(UUID(str(n.originator_id)), None)
        if len(notes) < 1000:
            break
        position = notes[-1].id
    for cid in app.readmodel.all_ids():  # conversations whose every event was removed
        seen.setdefault(cid, None)
    return list(seen)


def _verify_one(app: AuditSource, cid: UUID) -> tuple[int, Problem | None]:
    rows: list[_Row] = []
    for s in app.recorder.select_events(cid):
        try:
            state: dict[str, Any] | None = app.mapper.decode_state(s)
        except OpsloopError:
            state = None
        rows.append(_Row(s.originator_version, _type_name(s.topic), state))
    summary = app.readmodel.summary(cid)
    if not rows:
        if summary is None:
            return 0, None
        return 0, Problem(cid, 1, "", f"is missing: all {summary.version} events were removed")

    def bad(i: int, reason: str) -> tuple[int, Problem]:
        return len(rows), Problem(cid, rows[i].version, rows[i].type_name, reason)

    prev = genesis_hash(cid)
    for i, row in enumerate(rows):
        if row.version != i + 1:
            return len(rows), Problem(
                cid, i + 1, "", f"is missing (the log jumps from version {i} to {row.version})"
            )
        if row.state is None:
            return bad(i, "cannot be decoded: it was altered (or written with another cipher key)")
        if i == 0 and row.type_name != "Started":
            return bad(i, "should be Started: the start of the log was removed or reordered")
        if not _links(prev, row):
            if i == 0:
                return bad(i, "does not start the chain of this conversation: it was altered")
            nxt_ok = (
                _links(_hash(row), rows[i + 1])
                if i + 1 < len(rows)
                else summary is not None and summary.head_hash == _hash(row)
            )
            if nxt_ok:
                return bad(i - 1, f"was altered: event {row.version}'s prev_hash does not match it")
            return bad(
                i,
                f"was altered, removed or reordered: its prev_hash does not match "
                f"event {rows[i - 1].version}",
            )
        prev = _hash(row)
    last = rows[-1]
    if summary is not None and summary.version > last.version:
        return len(rows), Problem(
            cid,
            last.version + 1,
            "",
            f"is missing: the log ends at version {last.version} but version "
            f"{summary.version} was recorded",
        )
    if summary is not None and summary.version == last.version and summary.head_hash != prev:
        return bad(
            len(rows) - 1,
            "was altered: its hash differs from the one the read model "
            "recorded when it followed the log",
        )
    return len(rows), None
