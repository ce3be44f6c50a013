"""``opsloop audit export``: JSONL with the chain fields, and OpenTelemetry GenAI spans received
by an OTLP/HTTP receiver on loopback (decoded with the official protobuf classes)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bot.app.application import open_app
from domain.seal import GLOBAL_GENESIS, global_link
from sandbox.result import RunResult
from tests.integration.audit_helpers import KEY, run_audit, take_checkpoint
from tests.integration.test_event_store import HERE, reply


def a_store_with_a_block_and_a_tool_call(url: str) -> UUID:
    app = open_app(database_url=url, audit_key=KEY)
    try:
        cid, _ = app.receive_message(
            coordinates=HERE, message_key="m1", author="alice", text="SECRET-QUESTION disk?"
        )
        app.record_model_reply(cid, reply=reply("<helpers>df</helpers>"), prompt_fingerprint="f")
        app.start_block(cid, block_id="t1b1", limits={})
        app.record_tool_call(cid, block_id="t1b1", call_id="t1b1c1", tool="disk", arguments={})
        app.record_tool_result(
            cid, call_id="t1b1c1", ok=True, result="93%", result_bytes=3, truncated=False,
            duration_ms=4, error=None,
        )  # fmt: skip
        app.finish_block(
            cid,
            block_id="t1b1",
            result=RunResult(exit_code=0, signal=None, stdout="93%", stderr="", duration_ms=20),
        )
        app.record_model_reply(cid, reply=reply("SECRET-ANSWER"), prompt_fingerprint="f")
        app.answer(cid, text="SECRET-ANSWER")
    finally:
        app.close()
    return cid


def test_jsonl_has_one_line_per_event_and_its_chain_matches_the_checkpoint(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/events.sqlite3"
    cid = a_store_with_a_block_and_a_tool_call(url)
    checkpoint = take_checkpoint(url, tmp_path / "cp.json")
    done = run_audit(url, "audit", "export", "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(x["version"], x["type"]) for x in lines][:2] == [
        (1, "Started"),
        (2, "MessageReceived"),
    ]
    assert len(lines) == checkpoint["events"] == 9
    assert all(x["seal"] and x["prev_hash"] and x["conversation_id"] == str(cid) for x in lines)
    head = GLOBAL_GENESIS
    for x in lines:  # a SIEM can recompute the global chain the checkpoint signed
        head = global_link(
            head, x["position"], UUID(x["conversation_id"]), x["version"], x["digest"]
        )
    assert head == checkpoint["global_head"]
    assert lines[1]["payload"]["text"] == "SECRET-QUESTION disk?"
    later = run_audit(url, "audit", "export", "--since", "2999-01-01")
    assert later.returncode == 0 and later.stdout == ""


class Receiver(BaseHTTPRequestHandler):
    received: list[ExportTraceServiceRequest]

    def do_POST(self) -> None:  # noqa: N802 -- the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        type(self).received.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    received: list[ExportTraceServiceRequest] = []
    handler = type("Handler", (Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", received
    server.shutdown()
    server.server_close()


def spans_of(received: list[ExportTraceServiceRequest]) -> list[Any]:
    return [
        span
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]


def attributes(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = value.int_value if value.HasField("int_value") else value.string_value
    return out


def test_otel_export_sends_genai_spans_to_a_collector(
    tmp_path: Path, receiver: tuple[str, list[ExportTraceServiceRequest]]
) -> None:
    url = f"sqlite:///{tmp_path}/events.sqlite3"
    a_store_with_a_block_and_a_tool_call(url)
    endpoint, received = receiver
    done = run_audit(url, "audit", "export", "--format", "otel", "--endpoint", endpoint)
    assert done.returncode == 0, done.stderr
    assert "exported 5 span(s) of 1 loop run(s)" in done.stdout
    spans = spans_of(received)
    names = sorted(span.name for span in spans)
    assert names == [
        "chat llama3.1",
        "chat llama3.1",
        "execute_tool disk",
        "execute_tool helpers",
        "invoke_agent opsloop",
    ]
    by_name = {span.name: span for span in spans}
    run = by_name["invoke_agent opsloop"]
    chat = by_name["chat llama3.1"]
    assert chat.parent_span_id == run.span_id and chat.trace_id == run.trace_id
    assert attributes(chat)["gen_ai.usage.input_tokens"] == 40
    assert attributes(chat)["gen_ai.operation.name"] == "chat"
    assert attributes(by_name["execute_tool disk"])["gen_ai.tool.call.id"] == "t1b1c1"
    assert "SECRET" not in str(received)  # no content unless asked


def test_otel_export_carries_content_only_when_asked(
    tmp_path: Path, receiver: tuple[str, list[ExportTraceServiceRequest]]
) -> None:
    url = f"sqlite:///{tmp_path}/events.sqlite3"
    a_store_with_a_block_and_a_tool_call(url)
    endpoint, received = receiver
    done = run_audit(url, "audit", "export", "-f", "otel", "--endpoint", endpoint, "--content")
    assert done.returncode == 0, done.stderr
    run = next(s for s in spans_of(received) if s.name.startswith("invoke_agent"))
    assert "SECRET-QUESTION" in attributes(run)["gen_ai.input.messages"]
    assert "SECRET-ANSWER" in attributes(run)["gen_ai.output.messages"]


def test_a_collector_that_is_down_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/events.sqlite3"
    a_store_with_a_block_and_a_tool_call(url)
    done = run_audit(
        url, "audit", "export", "-f", "otel", "--endpoint", "http://127.0.0.1:9/v1/traces"
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("opsloop: the OTLP collector at")
