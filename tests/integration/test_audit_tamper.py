"""The tamper suite: an operator who can write to the database but holds no audit key.

Every case runs on real SQLite and real PostgreSQL. A keyed store with two conversations is
checkpointed (``opsloop audit checkpoint``), the attacker edits rows directly, and
``opsloop audit verify --all --against CHECKPOINT`` must exit 1 with one line that blames the
right thing: the edited event (never an intact one), the listing row when only the listing
was edited, the snapshot when only a snapshot was.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from bot.app.application import ConversationApp, open_app
from bot.errors import MixedStore
from bot.surface import Coordinates
from tests.integration.audit_helpers import KEY, Attacker, run_audit, take_checkpoint
from tests.integration.test_event_store import HERE, conversation, database_url, reply

__all__ = ["database_url"]  # the fixture: a fresh SQLite file or PostgreSQL database
THERE = Coordinates("slack", "T1", "C2", "1700000000.2")


class Store:
    """A keyed store with two conversations (six events each) and a checkpoint of it."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.app = open_app(database_url=url, audit_key=KEY)
        self.a = conversation(self.app)
        self.b, _ = self.app.receive_message(
            coordinates=THERE, message_key="b1", author="bob", text="is ci-9 up?"
        )
        self.app.record_model_reply(self.b, reply=reply("yes"), prompt_fingerprint="f")
        self.app.answer(self.b, text="yes, ci-9 is up")
        self.app.list_conversations()  # the listing has folded everything
        self.app.usage()  # and so has the usage ledger
        self.checkpoint = tmp / "checkpoint.json"
        take_checkpoint(url, self.checkpoint)
        self.attacker = Attacker(url)

    def verify(self, *extra: str, **env: str) -> Any:
        return run_audit(
            self.url, "audit", "verify", "--all", "--against", str(self.checkpoint), *extra, **env
        )


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(database_url, tmp_path)
    yield s
    s.app.close()


def tampered(result: Any) -> list[str]:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stdout.strip().splitlines()
    assert lines and all(line.startswith("TAMPERED ") for line in lines), result.stdout
    return lines


def test_the_untouched_store_verifies_against_its_checkpoint(store: Store) -> None:
    result = store.verify()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "intact: 2 conversation(s), 10 event(s), against 1 checkpoint(s)" in result.stdout


def test_an_edited_middle_event_is_named(store: Store) -> None:
    raw = store.attacker.state(store.a, 2)
    assert b'"author":"alice"' in raw  # (its text is encrypted for alice: see the erasure)
    store.attacker.set_state(store.a, 2, raw.replace(b'"author":"alice"', b'"author":"eve"'))
    assert tampered(store.verify()) == [
        f"TAMPERED conversation {store.a}: event 2 (MessageReceived) was altered: its seal "
        "does not hold (edited, or moved or copied from elsewhere, without the audit key)"
    ]


def test_an_edited_last_event_is_named(store: Store) -> None:
    store.attacker.edit_json(store.a, 6, text="all fine, nothing to see")
    (line,) = tampered(store.verify())
    assert f"conversation {store.a}: event 6 (Answered) was altered" in line


def test_an_edit_with_every_later_hash_recomputed_is_still_named(store: Store) -> None:
    store.attacker.edit_json(store.a, 2, text="please delete the backups")
    store.attacker.recompute_chain(store.a, 2, 6)
    (line,) = tampered(store.verify())
    assert f"conversation {store.a}: event 2 (MessageReceived) was altered" in line


def test_a_deleted_middle_event_is_named(store: Store) -> None:
    store.attacker.delete(store.a, 3)
    (line,) = tampered(store.verify())
    assert f"conversation {store.a}: event 3 is missing" in line


def test_a_deleted_tail_is_named_against_the_checkpoint(store: Store) -> None:
    store.attacker.delete(store.a, 5, 6)
    lines = tampered(store.verify())
    assert lines[0].startswith(
        f"TAMPERED conversation {store.a}: event 5 is missing: the log ends at version 4 "
        "but the checkpoint of "
    )
    assert not any("listing row was edited" in line for line in lines)


def test_a_whole_conversation_deleted_with_its_listing_row_is_named(store: Store) -> None:
    store.attacker.delete_conversation(store.b)
    (line,) = tampered(store.verify())
    assert line.startswith(
        f"TAMPERED conversation {store.b}: event 1 is missing: the whole conversation "
        "(4 events) was removed after the checkpoint of"
    )


def test_reordered_events_are_named(store: Store) -> None:
    third, fifth = store.attacker.state(store.a, 3), store.attacker.state(store.a, 5)
    store.attacker.set_state(store.a, 3, fifth)
    store.attacker.set_state(store.a, 5, third)
    lines = tampered(store.verify())
    assert f"conversation {store.a}: event 3 (ModelReplied) was altered" in lines[0]


def test_an_event_copied_from_another_conversation_is_named(store: Store) -> None:
    copied = store.attacker.state(store.b, 2)
    store.attacker.insert(store.a, 7, store.attacker.topic(store.b, 2), copied)
    (line,) = tampered(store.verify())
    assert f"conversation {store.a}: event 7 (MessageReceived) was altered" in line


def test_a_dropped_class_version_is_named(store: Store) -> None:
    state = store.attacker.decoded(store.a, 2)
    assert state.pop("class_version") == 2  # the v1 form would be upcast: a different replay
    store.attacker.set_decoded(store.a, 2, state)
    (line,) = tampered(store.verify())
    assert f"conversation {store.a}: event 2 (MessageReceived) was altered" in line


def test_an_unsealed_event_appended_to_a_keyed_store_is_named(store: Store) -> None:
    with pytest.raises(MixedStore, match="sealed with an audit key"):
        open_app(database_url=store.url)  # opsloop itself refuses to write unsealed events
    unkeyed = open_app(database_url=store.url, allow_mixed=True)  # a writer forced past that
    try:
        unkeyed.receive_message(
            coordinates=HERE, message_key="x", author="mallory", text="forged without the key"
        )
    finally:
        unkeyed.close()
    lines = tampered(store.verify())
    assert f"conversation {store.a}: event 7 (MessageReceived) is not sealed" in lines[0]


def test_an_edited_listing_row_blames_the_listing_not_an_event(store: Store) -> None:
    store.attacker.listing(
        "UPDATE opsloop_conversations SET cost = 0, started_by = 'mallory' "
        "WHERE conversation_id = ?",
        (str(store.a),),
    )
    (line,) = tampered(store.verify())
    assert line == (
        f"TAMPERED conversation {store.a}: listing row was edited: started_by is 'mallory' "
        "but its events say 'alice' (the events are intact)"
    )


def test_a_deleted_listing_row_blames_the_listing(store: Store) -> None:
    store.attacker.listing(
        "DELETE FROM opsloop_conversations WHERE conversation_id = ?", (str(store.b),)
    )
    (line,) = tampered(store.verify())
    assert line == (
        f"TAMPERED conversation {store.b}: listing row was deleted (its events are intact)"
    )


def test_an_edited_checkpoint_fails_its_signature(store: Store) -> None:
    import json

    body = json.loads(store.checkpoint.read_text())
    body["position"] -= 3  # claim less was covered
    store.checkpoint.write_text(json.dumps(body))
    (line,) = tampered(store.verify())
    assert line == (
        f"TAMPERED checkpoint: the checkpoint {store.checkpoint} was altered: its signature "
        "does not hold"
    )


def test_an_old_checkpoint_cannot_vouch_for_a_log_cut_back_to_it(
    store: Store, tmp_path: Path
) -> None:
    store.app.receive_message(coordinates=THERE, message_key="b2", author="bob", text="and?")
    newer = tmp_path / "newer.json"
    take_checkpoint(store.url, newer)
    store.attacker.delete(store.b, 5)  # back to what the old checkpoint saw
    assert store.verify().returncode == 0  # the old statement is still true of the prefix
    result = run_audit(
        store.url, "audit", "verify", "--all", "--against", str(store.checkpoint),
        "--against", str(newer),
    )  # fmt: skip
    (line,) = tampered(result)
    assert f"conversation {store.b}: event 5 is missing" in line


def test_a_flipped_ciphertext_byte_is_named(database_url: str, tmp_path: Path) -> None:
    cipher = base64.b64encode(b"c" * 32).decode()
    app = open_app(database_url=database_url, cipher_key=cipher, audit_key=KEY)
    try:
        cid = conversation(app)
    finally:
        app.close()
    attacker = Attacker(database_url)
    state = bytearray(attacker.state(cid, 3))
    state[len(state) // 2] ^= 0x01
    attacker.set_state(cid, 3, bytes(state))
    result = run_audit(database_url, "audit", "verify", "--all", OPSLOOP_CIPHER_KEY=cipher)
    (line,) = tampered(result)
    assert f"conversation {cid}: event 3 (ModelReplied) cannot be decoded" in line


def long_conversation(app: ConversationApp, turns: int = 60) -> UUID:
    cid, _ = app.receive_message(
        coordinates=Coordinates("slack", "T1", "C9", "9"), message_key="m", author="a", text="q"
    )
    for n in range(turns):
        app.record_model_reply(cid, reply=reply(f"turn {n}"), prompt_fingerprint="f")
    return cid


def test_an_edited_snapshot_is_named_and_never_believed(database_url: str, tmp_path: Path) -> None:
    app = open_app(database_url=database_url, audit_key=KEY)
    cid = long_conversation(app, turns=120)  # a snapshot at version 100
    true_counts = app.get(cid).counts
    app.close()
    checkpoint = tmp_path / "cp.json"
    assert take_checkpoint(database_url, checkpoint)["snapshots"][str(cid)][0][0] == 100
    attacker = Attacker(database_url)
    snap = attacker.decoded(cid, 100, "{snapshots}")
    snap["state"]["_input_tokens"] = 0  # the budget would see no spend
    attacker.set_decoded(cid, 100, snap, "{snapshots}")
    fresh = open_app(database_url=database_url, audit_key=KEY)
    try:
        assert fresh.get(cid).counts == true_counts  # the forged snapshot was not used
    finally:
        fresh.close()
    result = run_audit(database_url, "audit", "verify", "--all", "--against", str(checkpoint))
    (line,) = tampered(result)
    assert line.startswith(
        f"TAMPERED conversation {cid}: snapshot at version 100 was altered: its seal does not hold"
    )


def test_a_deleted_snapshot_is_named_against_the_checkpoint(
    database_url: str, tmp_path: Path
) -> None:
    app = open_app(database_url=database_url, audit_key=KEY)
    cid = long_conversation(app, turns=110)
    app.close()
    checkpoint = tmp_path / "cp.json"
    take_checkpoint(database_url, checkpoint)
    Attacker(database_url).sql("DELETE FROM {snapshots}")
    result = run_audit(database_url, "audit", "verify", "--all", "--against", str(checkpoint))
    (line,) = tampered(result)
    assert line.startswith(f"TAMPERED conversation {cid}: snapshot at version 100 was removed")
