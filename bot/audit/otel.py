"""``opsloop audit export --format otel``: the log as OpenTelemetry GenAI spans.

Spans follow the GenAI semantic conventions and go through the official SDK's OTLP/HTTP
exporter to a collector: ``invoke_agent opsloop`` for each loop run (a message received, until
the answer or the stop), ``chat MODEL`` for each model turn (``gen_ai.usage.input_tokens`` and
``output_tokens``), and ``execute_tool`` for each block (tool ``helpers``) and each tool call a
block made. Times are the events' own. Message, prompt and output text goes into spans only
with ``content=True`` (``--content``): by default a span says who, what and how much, not what
was said.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

AGENT = "opsloop"


def _ns(iso: str, minus_ms: int = 0) -> int:
    at = datetime.fromisoformat(iso) - timedelta(milliseconds=minus_ms)
    return int(at.timestamp() * 1_000_000_000)


def provider_for(exporter: SpanExporter) -> TracerProvider:
    """A tracer provider that hands every finished span to ``exporter`` at once."""
    provider = TracerProvider(resource=Resource.create({"service.name": AGENT}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def export_spans(
    provider: TracerProvider, items: Iterable[dict[str, Any]], *, content: bool = False
) -> int:
    """Emit the spans of timeline ``items`` (``bot.audit.replay.timeline_of``); returns how
    many loop runs were exported."""
    tracer = provider.get_tracer("opsloop.audit.export")
    runs, run = 0, None
    open_: dict[str, tuple[Any, dict[str, Any]]] = {}
    for e in items:
        t = e["type"]
        if t == "MessageReceived":
            if run is not None:
                run.end(end_time=_ns(e["timestamp"]))
            run = _start_run(tracer, e, content)
            runs += 1
            continue
        parent = trace.set_span_in_context(run) if run is not None else None
        if t == "ModelReplied":
            _chat(tracer, e, parent, content)
        elif t in ("BlockStarted", "ToolCalled"):
            key = e["block_id"] if t == "BlockStarted" else e["call_id"]
            open_[key] = (_start_tool(tracer, e, parent, content), e)
        elif t in ("BlockFinished", "BlockOutcomeUnknown", "ToolReturned", "ToolOutcomeUnknown"):
            key = e.get("call_id") or e.get("block_id") or ""
            if key in open_:
                span, _ = open_.pop(key)
                _finish_tool(span, e, content)
        elif t in ("Answered", "Stopped") and run is not None:
            if content and t == "Answered":
                run.set_attribute("gen_ai.output.messages", _messages("assistant", e["text"]))
            run.end(end_time=_ns(e["timestamp"]))
            run = None
    for span, e in open_.values():
        span.end(end_time=_ns(e["timestamp"]))
    if run is not None:
        run.end()
    return runs


def _start_run(tracer: Any, e: dict[str, Any], content: bool) -> Any:
    span = tracer.start_span(
        f"invoke_agent {AGENT}",
        kind=trace.SpanKind.INTERNAL,
        start_time=_ns(e["timestamp"]),
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": AGENT,
            "gen_ai.conversation.id": e["conversation_id"],
            "opsloop.author": e.get("author", ""),
            "opsloop.event.version": e["version"],
        },
    )
    if content:
        span.set_attribute("gen_ai.input.messages", _messages("user", e.get("text", "")))
    return span


def _chat(tracer: Any, e: dict[str, Any], parent: Any, content: bool) -> None:
    span = tracer.start_span(
        f"chat {e.get('model', '')}",
        context=parent,
        kind=trace.SpanKind.CLIENT,
        start_time=_ns(e["timestamp"], int(e.get("latency_ms") or 0)),
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": e.get("provider", ""),
            "gen_ai.request.model": e.get("model", ""),
            "gen_ai.response.model": e.get("model", ""),
            "gen_ai.usage.input_tokens": int(e.get("input_tokens") or 0),
            "gen_ai.usage.output_tokens": int(e.get("output_tokens") or 0),
            "gen_ai.conversation.id": e["conversation_id"],
            "opsloop.event.version": e["version"],
        },
    )
    if content:
        span.set_attribute("gen_ai.output.messages", _messages("assistant", e.get("text", "")))
    span.end(end_time=_ns(e["timestamp"]))


def _start_tool(tracer: Any, e: dict[str, Any], parent: Any, content: bool) -> Any:
    tool = "helpers" if e["type"] == "BlockStarted" else e.get("tool", "")
    call_id = e["block_id"] if e["type"] == "BlockStarted" else e["call_id"]
    span = tracer.start_span(
        f"execute_tool {tool}",
        context=parent,
        kind=trace.SpanKind.INTERNAL,
        start_time=_ns(e["timestamp"]),
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "gen_ai.tool.call.id": call_id,
            "gen_ai.conversation.id": e["conversation_id"],
            "opsloop.event.version": e["version"],
        },
    )
    if content:
        arguments = e.get("code") if e["type"] == "BlockStarted" else e.get("arguments")
        span.set_attribute("gen_ai.tool.call.arguments", json.dumps(arguments, default=str))
    return span


def _finish_tool(span: Any, e: dict[str, Any], content: bool) -> None:
    failed = (
        e["type"].endswith("OutcomeUnknown")
        or e.get("ok") is False
        or (e["type"] == "BlockFinished" and (e.get("exit_code") != 0 or e.get("timed_out")))
    )
    if failed:
        span.set_attribute("error.type", e["type"] if "Unknown" in e["type"] else "tool_error")
        span.set_status(trace.Status(trace.StatusCode.ERROR))
    if content:
        result = e.get("stdout") if e["type"] == "BlockFinished" else e.get("result")
        span.set_attribute("gen_ai.tool.call.result", json.dumps(result, default=str))
    span.end(end_time=_ns(e["timestamp"]))


def _messages(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])
