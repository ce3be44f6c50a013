"""docs/events.md stays true to the event classes and to what replay prints."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bot.app.application import open_app
from bot.ports import ModelReply
from bot.surface import Coordinates
from domain import events as ev
from domain.conversation_files import text_sha256

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
LIBRARY_FIELDS = {"originator_id", "originator_version", "timestamp", "originator_topic"}
JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
    "null": type(None),
}


def schema() -> dict[str, Any]:
    block = re.search(r"## JSON Schema\n\n```json\n(.*?)\n```", DOC.read_text(), re.S)
    assert block, "docs/events.md has no JSON Schema block"
    return json.loads(block.group(1))


def test_the_schema_lists_every_event_with_exactly_its_fields() -> None:
    by_type = {b["properties"]["type"]["const"]: b for b in schema()["oneOf"]}
    assert set(by_type) == {cls.__name__ for cls in ev.EVENT_TYPES}
    for cls in ev.EVENT_TYPES:
        fields = set(cls.__dataclass_fields__) - LIBRARY_FIELDS - {"prev_hash"}
        assert set(by_type[cls.__name__]["required"]) == fields, cls.__name__
        assert f"**{cls.__name__}**" in DOC.read_text()


def conforms(item: dict[str, Any], doc: dict[str, Any]) -> bool:
    def ok(value: Any, spec: dict[str, Any]) -> bool:
        kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
        return any(
            isinstance(value, JSON_TYPES[k])
            and not (k in ("integer", "number") and isinstance(value, bool))
            for k in kinds
        )

    branch = next(b for b in doc["oneOf"] if b["properties"]["type"]["const"] == item["type"])
    required = doc["required"] + branch["required"]
    props = {**doc["properties"], **branch["properties"]}
    return all(k in item for k in required) and all(
        ok(item[k], props[k]) for k in item if k in props and "type" in props[k]
    )


def test_replayed_json_lines_conform_to_the_schema() -> None:
    app = open_app(database_url="memory:")
    here = Coordinates("cli", "", "tty", "1")
    cid, _ = app.receive_message(coordinates=here, message_key="k", author="a", text="hi")
    app.record_model_reply(
        cid,
        reply=ModelReply(
            text="<helpers>print(1)</helpers>",
            provider="p",
            model="m",
            input_tokens=1,
            output_tokens=1,
            tokens_estimated=True,
            cost=0.0,
            priced=False,
            latency_ms=1,
            attempts=1,
        ),
        prompt_fingerprint="f",
    )
    app.start_block(cid, block_id="t1b1", limits={"wall_s": 1})
    app.mark_block_unknown(cid, block_id="t1b1", detail="restarted")
    sha = "0" * 64
    app.record_file_received(cid, name="a.log", size=3, sha256=sha, by="a")
    app.record_file_refused(cid, name="b.bin", reason="too big", by="a")
    app.record_file_sent(cid, name="r.txt", size=3, sha256=sha)
    app.answer(cid, text="done")
    app.record_feedback(cid, by="b", value="good", answer_sha256=text_sha256("done"))
    app.stop(cid, reason="cancelled")
    app.renew(coordinates=here, by="a")
    doc = schema()
    items = app.timeline(cid)
    assert len(items) == 12
    for item in items:
        assert conforms(json.loads(json.dumps(item)), doc), item
