"""The seal and the global chain (domain/seal.py): pure, checked over generated records."""

from __future__ import annotations

from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from domain.seal import (
    GLOBAL_GENESIS,
    Record,
    digest_of,
    global_link,
    key_id,
    seal,
    seal_check,
)

records = st.builds(
    Record,
    originator_id=st.uuids(),
    version=st.integers(min_value=1, max_value=10**6),
    topic=st.text(min_size=1, max_size=40),
    state=st.binary(max_size=200),
)
keys = st.binary(min_size=16, max_size=64)


@given(records, keys)
def test_a_record_sealed_under_a_key_checks_under_that_key(record: Record, key: bytes) -> None:
    assert seal_check(key, record, seal(key, record)) == "ok"


@given(records, keys, st.data())
def test_any_change_to_any_field_breaks_the_seal(
    record: Record, key: bytes, data: st.DataObject
) -> None:
    stored = seal(key, record)
    field = data.draw(st.sampled_from(["originator_id", "version", "topic", "state"]))
    changed = {
        "originator_id": Record(
            UUID(int=record.originator_id.int ^ 1), record.version, record.topic, record.state
        ),
        "version": Record(record.originator_id, record.version + 1, record.topic, record.state),
        "topic": Record(record.originator_id, record.version, record.topic + "x", record.state),
        "state": Record(record.originator_id, record.version, record.topic, record.state + b"\x00"),
    }[field]
    assert seal_check(key, changed, stored) == "bad"


@given(records, keys, keys)
def test_another_key_is_named_as_another_key_not_as_tampering(
    record: Record, key: bytes, other: bytes
) -> None:
    if key_id(key) == key_id(other):
        return
    assert seal_check(other, record, seal(key, record)) == "other-key"


@given(records, st.integers(min_value=1, max_value=10**9))
def test_the_global_chain_depends_on_the_position(record: Record, position: int) -> None:
    digest = digest_of(None, record)
    here = global_link(GLOBAL_GENESIS, position, record.originator_id, record.version, digest)
    moved = global_link(GLOBAL_GENESIS, position + 1, record.originator_id, record.version, digest)
    assert here != moved and len(here) == 64
