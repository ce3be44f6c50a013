"""Audit: check every stored record, every chain, the listing, and checkpoints taken before.

Verification reads the records exactly as stored (decrypted and decompressed, never upcast,
never written: see ``bot.audit.reader``) and, per conversation, checks that versions run
1, 2, 3 … without a gap, that the first event is ``Started`` and starts from the conversation
id, that each event's ``prev_hash`` is the hash of the stored event before it, and that each
seal holds under the audit key (``domain.seal``): a seal covers the whole record, so an edit,
a recomputed chain, a dropped ``class_version`` or an event moved or copied from elsewhere
breaks it, and the seal names the event that is wrong. Once the store is keyed, an unsealed
event after the switch was written without the key: tampering too. A conversation that began
unsealed records the switch, ``AuditKeyed``, as its first sealed event.

When event *i* does not link to event *i-1* and *i*'s seal holds, *i-1* is the altered one;
for unsealed events (written before the audit key), if event *i+1* still links to *i*, then
*i* is intact and *i-1* is named.

What seals cannot show -- a tail cut off, a whole conversation removed, the log reordered --
is shown against checkpoints (``bot.audit.against``); the listing table and the usage ledger
are checked against the events they summarise and blamed on their own
(``bot.audit.listing_audit``, ``bot.audit.usage_audit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from bot.audit.against import against
from bot.audit.checkpoint import signature_holds
from bot.audit.findings import Problem, VerifyReport
from bot.audit.listing_audit import listing_problems
from bot.audit.reader import Source, resolve_id
from bot.audit.scan import Decoded, Item, scan
from bot.audit.snapshots_audit import read_snapshots, snapshot_problems
from bot.audit.usage_audit import inserted, usage_problems
from bot.errors import AuditKeyProblem, NotFound
from domain.chain import event_hash, genesis_hash
from domain.seal import CONTENT_HASH

__all__ = ["Problem", "VerifyReport", "verify_log"]


def verify_log(
    source: Source,
    conversation: UUID | str | None = None,
    *,
    checkpoints: Sequence[tuple[str, dict[str, Any]]] = (),
    public_key: str | None = None,
) -> VerifyReport:
    """Verify one conversation, or every one; compare with each checkpoint given."""
    sc = scan(source)
    rows = sc.by_conversation()
    listing = source.listing() or {}
    known = [*rows, *listing, *(UUID(c) for _, cp in checkpoints for c in cp["heads"])]
    conversation_id = _resolve(conversation, known)
    selected = set(rows) | set(listing) if conversation_id is None else {conversation_id}
    in_checkpoints = any(str(conversation_id) in cp["heads"] for _, cp in checkpoints)
    if conversation_id is not None and not (
        conversation_id in rows or conversation_id in listing or in_checkpoints
    ):
        raise NotFound(f"no conversation {conversation_id}")
    first: dict[UUID, Problem] = {}
    for cid in selected:
        problem = _chain(cid, rows.get(cid, []), sc.keyed_since, listing.get(cid))
        if problem:
            first[cid] = problem
    others = _against_all(sc, checkpoints, public_key, source, first, conversation_id)
    intact = {c: rows[c] for c in selected if c not in first and rows.get(c)}
    others += _derived_problems(source, intact, rows, first, only=conversation_id)
    snaps = read_snapshots(source, selected)
    erased = {c for c, items in rows.items() if any(i.type_name == "UserErased" for i in items)}
    others += snapshot_problems(snaps, checkpoints, conversation_id, erased)
    items = [i for c in selected for i in rows.get(c, [])]
    return VerifyReport(
        conversations=len(selected),
        events=len(items),
        problems=(*sorted(first.values(), key=str), *others),
        sealed=sum(1 for i in items if i.seal_status == "ok"),
        unsealed=sum(1 for i in items if i.seal_status == "unsealed"),
        checkpoints=tuple(name for name, _ in checkpoints),
    )


def _derived_problems(
    source: Source,
    intact: dict[UUID, list[Item]],
    rows: dict[UUID, list[Item]],
    first: dict[UUID, Problem],
    *,
    only: UUID | None,
) -> list[Problem]:
    """The listing's and the usage ledger's rows against the intact conversations' events,
    each conversation decoded once for both."""
    listing, usage = source.listing(), source.usage()
    ledger = {k: r for k, r in usage[0].items() if only in (None, k[0])} if usage else {}
    decoded, found = Decoded(source.mapper), []
    at = source.listing_position() if listing is not None else 0
    for cid, items in intact.items():
        if listing is not None:
            found += listing_problems(decoded, {cid: items}, listing, at)
        if usage is not None:
            found += usage_problems(decoded, {cid: items}, ledger, usage[1])
    return found + (inserted(ledger, rows, set(first)) if usage is not None else [])


def _resolve(conversation: UUID | str | None, known: list[UUID]) -> UUID | None:
    if conversation is None or isinstance(conversation, UUID):
        return conversation
    return resolve_id(conversation, known)


def _against_all(
    sc: Any,
    checkpoints: Sequence[tuple[str, dict[str, Any]]],
    public_key: str | None,
    source: Source,
    first: dict[UUID, Problem],
    only: UUID | None,
) -> list[Problem]:
    """Problems found against checkpoints: per conversation into ``first`` (the lowest
    version wins), the rest returned."""
    others: list[Problem] = []
    key = source.mapper.audit_key
    if checkpoints and not key:
        raise AuditKeyProblem("verify --against needs the audit key (OPSLOOP_AUDIT_KEY)")
    for name, cp in checkpoints:
        if not signature_holds(cp, key=key or b"", public_key=public_key):
            others.append(
                Problem(
                    None,
                    0,
                    "",
                    f"the checkpoint {name} was altered: its signature does not hold",
                    kind="checkpoint",
                )
            )
            continue
        for p in against(sc, cp, name):
            cid = p.conversation_id
            if cid is None:
                if not first:  # a changed order is news only when no event is to blame
                    others.append(p)
            elif only in (None, cid):
                current = first.get(cid)
                if current is None or p.version < current.version:
                    first[cid] = p
    return others


def _hash(item: Item) -> str:
    assert item.state is not None
    if item.state.get(CONTENT_HASH):  # personal text is stored encrypted: the hash from before
        return str(item.state[CONTENT_HASH])  # (covered by the seal)
    return event_hash(
        type_name=item.type_name,
        version=item.version,
        timestamp=item.state["timestamp"],
        payload=item.state,
    )


def _bad(item: Item, reason: str) -> Problem:
    return Problem(item.conversation_id, item.version, item.type_name, reason)


def _seal_problem(item: Item, keyed_since: int | None, sealed_before: bool) -> Problem | None:
    if item.seal_status == "bad":
        return _bad(
            item,
            "was altered: its seal does not hold (edited, or moved or copied from elsewhere, "
            "without the audit key)",
        )
    if item.seal_status == "other-key":
        kid = (item.seal or "").partition(":")[0]
        return _bad(item, f"is sealed with another audit key ({kid}): it was forged or copied")
    unsealed = item.seal_status == "unsealed"
    if unsealed and keyed_since is not None and (sealed_before or item.position > keyed_since):
        return _bad(
            item,
            f"is not sealed, but the store is sealed since position {keyed_since}: it was "
            "inserted or rewritten without the audit key",
        )
    return None


def _switch_problem(
    items: list[Item], i: int, *, unsealed_before: int, sealed_before: bool
) -> Problem | None:
    """The switch to the audit key is recorded, once, where it happened: a conversation that
    began unsealed has ``AuditKeyed`` as its first sealed event, counting the events before it
    and naming the key that seals it (bot/app/keyed.py). Without it, the unsealed event just
    before is blamed: its seal was stripped (or an opsloop older than the event wrote it)."""
    item = items[i]
    keyed = item.type_name == "AuditKeyed"
    if item.seal_status != "ok" or (sealed_before and not keyed):
        return None
    assert item.state is not None
    if not keyed:
        if not unsealed_before:
            return None
        return _bad(
            items[i - 1],
            f"is not sealed, but event {item.version} after it is, with no AuditKeyed "
            "between: its seal was stripped (or an opsloop older than AuditKeyed wrote the "
            "switch)",
        )
    if sealed_before or not unsealed_before:
        return _bad(item, "records a switch to the audit key where there was none")
    if item.state.get("unsealed") != unsealed_before:
        return _bad(
            item,
            f"records {item.state.get('unsealed')} unsealed events before it, "
            f"but there are {unsealed_before}",
        )
    if item.state.get("key_id") != (item.seal or "").partition(":")[0]:
        return _bad(item, "names another audit key than the one that seals it")
    return None


def _chain(
    cid: UUID, items: list[Item], keyed_since: int | None, row: dict[str, Any] | None
) -> Problem | None:
    if not items:
        if row is None:
            return None
        return Problem(cid, 1, "", f"is missing: all {row.get('version')} events were removed")
    prev, sealed_before = genesis_hash(cid), False
    for i, item in enumerate(items):
        if item.version != i + 1:
            return Problem(
                cid, i + 1, "", f"is missing (the log jumps from version {i} to {item.version})"
            )
        if item.state is None:
            return _bad(item, "cannot be decoded: it was altered (its stored bytes were changed)")
        problem = _seal_problem(item, keyed_since, sealed_before) or _switch_problem(
            items, i, unsealed_before=i if not sealed_before else 0, sealed_before=sealed_before
        )
        if problem:
            return problem
        sealed_before = sealed_before or item.seal_status == "ok"
        if i == 0 and item.type_name != "Started":
            return _bad(item, "should be Started: the start of the log was removed or reordered")
        if item.state.get("prev_hash") != prev:
            return _unlinked(items, i)
        prev = _hash(item)
    last = items[-1]
    if (
        last.seal_status != "ok"
        and row is not None
        and int(row.get("version") or 0) == last.version
        and row.get("head_hash") != prev
    ):
        return _bad(
            last,
            "was altered: its hash differs from the one the read model "
            "recorded when it followed the log",
        )
    return None


def _unlinked(items: list[Item], i: int) -> Problem:
    """Event ``i``'s ``prev_hash`` does not match event ``i-1``: which one is wrong."""
    item = items[i]
    if i == 0:
        return _bad(item, "does not start the chain of this conversation: it was altered")
    before = items[i - 1]
    if item.seal_status == "ok":
        return _bad(
            before, f"was altered: event {item.version}'s sealed prev_hash does not match it"
        )
    after = items[i + 1] if i + 1 < len(items) else None
    if (
        after is not None
        and after.state is not None
        and after.state.get("prev_hash") == _hash(item)
    ):
        return _bad(before, f"was altered: event {item.version}'s prev_hash does not match it")
    return _bad(
        item,
        f"was altered, removed or reordered: its prev_hash does not match event {before.version}",
    )
