"""The conversation application on the in-memory store: commands, queries, replay, upcasting."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from bot.app.application import SNAPSHOT_INTERVAL, ConversationApp, open_app
from bot.app.store import store_env
from bot.audit.replay import render
from bot.errors import AmbiguousId, ConfigError, NotFound, StoreUnreachable
from bot.ports import ModelReply, ProviderFailure
from bot.surface import Coordinates
from domain.ids import conversation_id

HERE = Coordinates("slack", "T1", "C1", "1700000000.1")


@dataclass(frozen=True)
class FakeRunResult:
    """The fields of sandbox.result.RunResult that the log records."""

    exit_code: int | None = 0
    signal: int | None = None
    stdout: str = "ok\n"
    stderr: str = ""
    duration_ms: int = 15
    cpu_ms: int | None = 4
    timed_out: bool = False
    memory_exceeded: bool = False
    output_truncated: bool = False
    unsafe_local: bool = False


def model_reply(text: str, **overrides: object) -> ModelReply:
    values: dict[str, object] = {
        "text": text,
        "provider": "ollama",
        "model": "llama3.1",
        "input_tokens": 50,
        "output_tokens": 10,
        "tokens_estimated": False,
        "cost": 0.5,
        "priced": True,
        "latency_ms": 700,
        "attempts": 1,
    }
    values.update(overrides)
    return ModelReply(**values)  # type: ignore[arg-type]


@pytest.fixture
def app() -> Iterator[ConversationApp]:
    application = open_app(database_url="memory:")
    yield application
    application.close()


def a_full_turn(app: ConversationApp, coordinates: Coordinates = HERE, key: str = "m1") -> object:
    cid, _ = app.receive_message(
        coordinates=coordinates, message_key=key, author="alice", text="why is disk full?"
    )
    app.record_model_reply(
        cid,
        reply=model_reply(
            "<helpers>print(1)</helpers>",
            failures=(ProviderFailure("groq", "llama-70b", "HTTP 503", 3),),
        ),
        prompt_fingerprint="fp1",
    )
    app.start_block(cid, block_id="t1b1", limits={"wall_s": 10, "memory_mb": 256})
    app.finish_block(
        cid,
        block_id="t1b1",
        result=FakeRunResult(timed_out=True, exit_code=None, signal=9, unsafe_local=True),
    )
    app.record_model_reply(cid, reply=model_reply("the log directory"), prompt_fingerprint="fp2")
    app.answer(cid, text="the log directory")
    return cid


def test_receiving_a_message_starts_the_conversation_once(app: ConversationApp) -> None:
    cid, recorded = app.receive_message(
        coordinates=HERE, message_key="m1", author="alice", text="hi"
    )
    assert recorded and cid == app.current_id(HERE)
    assert app.receive_message(coordinates=HERE, message_key="m1", author="alice", text="hi") == (
        cid,
        False,
    )
    assert [e["type"] for e in app.timeline(cid)] == ["Started", "MessageReceived"]


def test_a_whole_turn_is_recorded_and_totalled(app: ConversationApp) -> None:
    cid = a_full_turn(app)
    types = [e["type"] for e in app.timeline(cid)]
    assert types == [
        "Started",
        "MessageReceived",
        "ModelFailed",
        "ModelReplied",
        "BlockStarted",
        "BlockFinished",
        "ModelReplied",
        "Answered",
    ]
    totals = app.totals(cid)
    assert (totals.messages, totals.model_turns, totals.blocks) == (1, 2, 1)
    assert (totals.input_tokens, totals.output_tokens, totals.cost) == (100, 20, 1.0)
    assert app.get(cid).status == "answered"


def test_timeline_items_carry_type_version_timestamp_id_and_payload(app: ConversationApp) -> None:
    cid = a_full_turn(app)
    finished = app.timeline(cid)[5]
    assert finished["type"] == "BlockFinished" and finished["version"] == 6
    assert finished["conversation_id"] == str(cid)
    assert datetime.fromisoformat(finished["timestamp"]).tzinfo is not None
    assert (finished["signal"], finished["timed_out"], finished["unsafe_local"]) == (9, True, True)
    assert len(finished["prev_hash"]) == 64


def test_replay_text_shows_who_said_what_models_blocks_limits_and_the_answer(
    app: ConversationApp,
) -> None:
    text = "\n".join(render(app.timeline(a_full_turn(app)), fmt="text"))
    for expected in (
        "alice said:",
        "why is disk full?",
        "ollama/llama3.1, 50 in / 10 out tokens",
        "$0.5000",
        "700 ms",
        "block t1b1 (python) started",
        "killed by signal 9",
        "limit hit: time limit",
        "UNSAFE-LOCAL",
        "model failed: groq/llama-70b",
        "answer:",
        "the log directory",
    ):
        assert expected in text


def test_replay_json_is_one_object_per_event_per_line(app: ConversationApp) -> None:
    cid = a_full_turn(app)
    lines = list(render(app.timeline(cid), fmt="json"))
    objects = [json.loads(line) for line in lines]
    assert len(objects) == 8
    assert all({"type", "version", "timestamp", "conversation_id"} <= set(o) for o in objects)


def test_replay_markdown_fences_code_and_output(app: ConversationApp) -> None:
    text = "\n".join(render(app.timeline(a_full_turn(app)), fmt="markdown"))
    assert "```python\nprint(1)\n```" in text
    assert "### Answer" in text and "**UNSAFE-LOCAL**" in text


def test_listing_filters_by_platform_channel_user_and_time(app: ConversationApp) -> None:
    a_full_turn(app)
    other = Coordinates("discord", "", "D9", "D9")
    app.receive_message(coordinates=other, message_key="d1", author="bob", text="hello")
    assert {s.platform for s in app.list_conversations()} == {"slack", "discord"}
    assert [s.channel for s in app.list_conversations(platform="discord")] == ["D9"]
    assert [s.platform for s in app.list_conversations(channel="C1")] == ["slack"]
    assert [s.platform for s in app.list_conversations(user="bob")] == ["discord"]
    assert app.list_conversations(user="bo") == []
    future = datetime.now(UTC) + timedelta(days=1)
    assert app.list_conversations(since=future) == []
    assert len(app.list_conversations(until=future)) == 2
    slack = app.list_conversations(platform="slack")[0]
    assert (slack.messages, slack.model_turns, slack.blocks, slack.status) == (1, 2, 1, "answered")


def test_the_listing_follows_events_written_by_another_process(app: ConversationApp) -> None:
    a_full_turn(app)
    assert len(app.list_conversations()) == 1
    # A second application on the same database stands in for another replica.
    replica = ConversationApp(dict(app.env), database_url="memory:")
    replica.receive_message(
        coordinates=Coordinates("cli", "", "tty", "1"), message_key="k", author="carol", text="hi"
    )
    assert len(app.list_conversations()) == 2
    assert app.readmodel.catch_up() == 0


def test_resolve_accepts_full_ids_and_unique_prefixes(app: ConversationApp) -> None:
    cid = a_full_turn(app)
    assert app.resolve(str(cid)) == cid
    assert app.resolve(cid.hex[:8]) == cid
    assert app.resolve(str(cid).upper()[:10]) == cid


def test_resolve_rejects_unknown_malformed_and_ambiguous_ids(app: ConversationApp) -> None:
    with pytest.raises(NotFound, match="not a conversation id"):
        app.resolve("not-a-uuid!")
    with pytest.raises(NotFound, match="no conversation"):
        app.resolve(str(conversation_id(platform="x", workspace="", channel="", thread="")))
    ids = [
        app.receive_message(
            coordinates=Coordinates("cli", "", "c", str(n)), message_key="k", author="a", text="t"
        )[0]
        for n in range(17)
    ]
    first_chars = [i.hex[0] for i in ids]
    shared = next(c for c in first_chars if first_chars.count(c) > 1)  # pigeonhole: 17 > 16
    with pytest.raises(AmbiguousId):
        app.resolve(shared)


def test_new_links_the_old_conversation_to_its_successor(app: ConversationApp) -> None:
    first = a_full_turn(app)
    second = app.renew(coordinates=HERE, by="alice")
    assert second != first and app.current_id(HERE) == second
    assert app.get(first).successor_id == second
    assert app.get(second).generation == 1
    cid, recorded = app.receive_message(
        coordinates=HERE, message_key="m2", author="alice", text="again"
    )
    assert (cid, recorded) == (second, True)
    assert app.renew(coordinates=HERE, by="bob") == conversation_id(
        platform=HERE.platform,
        workspace=HERE.workspace,
        channel=HERE.channel,
        thread=HERE.thread,
        generation=2,
    )


def test_open_conversations_are_those_with_a_message_in_progress(app: ConversationApp) -> None:
    a_full_turn(app)
    busy = Coordinates("slack", "T1", "C2", "9.9")
    cid, _ = app.receive_message(coordinates=busy, message_key="b1", author="dan", text="help")
    assert app.open_conversations() == [(cid, busy)]


def test_long_conversations_are_snapshotted_and_the_sealed_snapshot_is_used() -> None:
    app = open_app(database_url="memory:", audit_key=b"k" * 32)
    cid, _ = app.receive_message(coordinates=HERE, message_key="m0", author="a", text="t")
    for n in range(1, SNAPSHOT_INTERVAL):
        app.receive_message(coordinates=HERE, message_key=f"m{n}", author="a", text="t")
    assert app.snapshots is not None
    snapshots = list(app.snapshots.get(cid))
    assert [s.originator_version for s in snapshots] == [SNAPSHOT_INTERVAL]
    assert app.get(cid).version == SNAPSHOT_INTERVAL + 1
    assert app.verify(cid).intact
    app.close()


def test_without_an_audit_key_no_snapshot_is_believed(app: ConversationApp) -> None:
    cid, _ = app.receive_message(coordinates=HERE, message_key="m0", author="a", text="t")
    for n in range(1, SNAPSHOT_INTERVAL + 1):
        app.receive_message(coordinates=HERE, message_key=f"m{n}", author="a", text="t")
    assert app.snapshots is not None
    assert list(app.snapshots.get(cid)) == []  # written, but unsealed: never used to load
    assert app.snapshots.recorder.select_events(cid)  # (it was written)
    assert app.get(cid).counts["messages"] == SNAPSHOT_INTERVAL + 1


def test_the_log_verifies_intact(app: ConversationApp) -> None:
    a_full_turn(app)
    report = app.verify()
    assert report.intact and (report.conversations, report.events) == (1, 8)


def test_malformed_urls_and_cipher_keys_are_refused_in_one_sentence() -> None:
    for url in ("mysql://db", "sqlite:", "postgresql://host-only", "postgresql://u@h:notaport/db"):
        with pytest.raises(StoreUnreachable, match="malformed"):
            store_env(url)
    with pytest.raises(ConfigError, match="OPSLOOP_CIPHER_KEY"):
        store_env("memory:", cipher_key="short")


def test_urls_map_to_the_library_environment(tmp_path: object) -> None:
    env = store_env("postgresql://bot:s%40cret@db.example:6543/opsloop?schema=audit")
    assert env["POSTGRES_PASSWORD"] == "s@cret" and env["POSTGRES_PORT"] == "6543"
    assert (env["POSTGRES_DBNAME"], env["POSTGRES_SCHEMA"]) == ("opsloop", "audit")
    env = store_env(f"sqlite:///{tmp_path}/x/events.db", create=True)
    assert env["SQLITE_DBNAME"] == f"{tmp_path}/x/events.db"
    env = store_env("memory:", cipher_key=base64.b64encode(bytes(32)).decode())
    assert env["CIPHER_TOPIC"].endswith("AESCipher") and env["COMPRESSOR_TOPIC"].endswith(
        "Compressor"
    )


def test_a_renewal_by_another_replica_is_followed(app: ConversationApp) -> None:
    first, _ = app.receive_message(coordinates=HERE, message_key="m1", author="a", text="hi")
    replica = ConversationApp(dict(app.env), database_url="memory:")
    second = replica.renew(coordinates=HERE, by="b")
    cid, recorded = app.receive_message(coordinates=HERE, message_key="m2", author="a", text="x")
    assert (cid, recorded) == (second, True) and second != first
