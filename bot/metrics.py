"""What this process did, for Prometheus: counted from the events it records.

Every replica counts its own work (Prometheus sums the replicas): the application calls
``observe`` for each event it has just stored, so a message, a model call or a block is
counted once, by the process that recorded it, and only once it is in the log. The loop
runner keeps ``opsloop_loops_running``; the store's retry counts ``opsloop_store_conflicts``.
The sandbox service's queue is counted where it is, in sandbox/metrics.py.
Served on ``/metrics`` (bot/health.py) in the text format, through ``prometheus_client``, from
a registry of opsloop's own (tests build many applications in one process).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.process_collector import ProcessCollector

from domain import events as ev

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

LOOPS_RUNNING = Gauge(
    "opsloop_loops_running", "Conversation loops this process runs now", registry=REGISTRY
)
MESSAGES = Counter(
    "opsloop_messages", "Messages recorded, by surface", ["surface", "outcome"], registry=REGISTRY
)
MODEL_CALLS = Counter(
    "opsloop_model_calls",
    "Model calls, by provider, model and outcome (replied or failed)",
    ["provider", "model", "outcome"],
    registry=REGISTRY,
)
MODEL_LATENCY = Histogram(
    "opsloop_model_latency_seconds",
    "Latency of the model calls that replied",
    ["provider", "model"],
    buckets=_SECONDS,
    registry=REGISTRY,
)
MODEL_TOKENS = Counter(
    "opsloop_model_tokens",
    "Tokens of model calls, by direction (input or output)",
    ["provider", "model", "direction"],
    registry=REGISTRY,
)
MODEL_COST = Counter(
    "opsloop_model_cost_usd", "Cost of model calls in USD", ["provider", "model"], registry=REGISTRY
)
BLOCKS = Counter(
    "opsloop_blocks",
    "Helper blocks by outcome (succeeded, failed, refused, skipped, unknown, late)",
    ["outcome"],
    registry=REGISTRY,
)
BLOCK_DURATION = Histogram(
    "opsloop_block_duration_seconds",
    "Wall time of the blocks that ran",
    ["outcome"],
    buckets=_SECONDS,
    registry=REGISTRY,
)
TOOL_CALLS = Counter(
    "opsloop_tool_calls",
    "Tool calls of blocks, by tool and outcome (ok, error, refused, unknown)",
    ["tool", "outcome"],
    registry=REGISTRY,
)
LEASE_CLAIMS = Counter(
    "opsloop_lease_claims", "Loops this process claimed (a new lease token)", registry=REGISTRY
)
LEASE_TAKEOVERS = Counter(
    "opsloop_lease_takeovers",
    "Loops this process took over from a holder whose lease had expired",
    registry=REGISTRY,
)
STORE_CONFLICTS = Counter(
    "opsloop_store_conflicts",
    "Concurrent-write conflicts of the event store (each retried)",
    registry=REGISTRY,
)

_TOOL_NAMES: dict[str, str] = {}  # call id -> tool, from ToolCalled until its outcome
_MOST_TOOL_NAMES = 10_000


def exposition() -> tuple[bytes, str]:
    """The registry in the Prometheus text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def conflict() -> None:
    """Count one concurrent-write conflict (the store retries it)."""
    STORE_CONFLICTS.inc()


def observe(event: Any, *, surface: str) -> None:
    """Count one event this process has just stored (``surface``: its conversation's)."""
    match event:
        case ev.MessageReceived():
            MESSAGES.labels(surface, "received").inc()
        case ev.MessageRefused():
            MESSAGES.labels(surface, "refused").inc()
        case ev.ModelReplied():
            _model_reply(event)
        case ev.ModelFailed():
            MODEL_CALLS.labels(event.provider, event.model, "failed").inc()
        case ev.BlockFinished() | ev.BlockFinishedLate():
            outcome = _finished(event)
            BLOCKS.labels(outcome).inc()
            BLOCK_DURATION.labels(outcome).observe(event.duration_ms / 1000)
        case ev.BlockRefused():
            BLOCKS.labels("refused").inc()
        case ev.BlockSkipped():
            BLOCKS.labels("skipped").inc()
        case ev.BlockOutcomeUnknown():
            BLOCKS.labels("unknown").inc()
        case ev.ToolCalled():
            if len(_TOOL_NAMES) < _MOST_TOOL_NAMES:
                _TOOL_NAMES[event.call_id] = event.tool
        case ev.ToolReturned():
            tool = _TOOL_NAMES.pop(event.call_id, "?")
            TOOL_CALLS.labels(tool, "ok" if event.ok else "error").inc()
        case ev.ToolRefused():
            _TOOL_NAMES.pop(event.call_id, None)
            TOOL_CALLS.labels(event.tool, "refused").inc()
        case ev.ToolOutcomeUnknown():
            TOOL_CALLS.labels(_TOOL_NAMES.pop(event.call_id, "?"), "unknown").inc()
        case ev.LoopClaimed():
            LEASE_CLAIMS.inc()
            if event.taken_over_from:
                LEASE_TAKEOVERS.inc()
        case _:  # the other events are not counted
            pass


def _model_reply(event: ev.ModelReplied) -> None:
    labels = (event.provider, event.model)
    MODEL_CALLS.labels(*labels, "replied").inc()
    MODEL_LATENCY.labels(*labels).observe(event.latency_ms / 1000)
    MODEL_TOKENS.labels(*labels, "input").inc(max(event.input_tokens, 0))
    MODEL_TOKENS.labels(*labels, "output").inc(max(event.output_tokens, 0))
    MODEL_COST.labels(*labels).inc(max(event.cost, 0.0))


def _finished(event: ev.BlockFinished | ev.BlockFinishedLate) -> str:
    if isinstance(event, ev.BlockFinishedLate):
        return "late"
    return "succeeded" if event.exit_code == 0 and not event.timed_out else "failed"
