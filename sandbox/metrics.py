"""The sandbox service's own metrics: its queue, its runs and what it refused.

``opsloop serve sandbox`` serves them on ``/metrics`` in the Prometheus text format, through
``prometheus_client``, from a registry of its own (the service imports nothing from the bot).
The gauges read the admission gate when scraped, so they are exact at that moment.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.process_collector import ProcessCollector

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

QUEUE_DEPTH = Gauge(
    "opsloop_sandbox_queue_depth",
    "Runs admitted and waiting for a free slot",
    registry=REGISTRY,
)
RUNNING = Gauge("opsloop_sandbox_running", "Runs in progress", registry=REGISTRY)
REFUSED = Counter(
    "opsloop_sandbox_refused", "Runs refused because the queue was full", registry=REGISTRY
)
RUNS = Counter(
    "opsloop_sandbox_runs",
    "Runs by outcome (succeeded, failed, timed_out, error)",
    ["outcome"],
    registry=REGISTRY,
)
RUN_SECONDS = Histogram(
    "opsloop_sandbox_run_seconds",
    "Wall time of the runs",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)


def watch(*, admitted: Callable[[], int], concurrency: int) -> None:
    """Read the gate's counts at each scrape (the latest service's, in a test process)."""
    RUNNING.set_function(lambda: min(admitted(), concurrency))
    QUEUE_DEPTH.set_function(lambda: max(admitted() - concurrency, 0))


def count_run(*, exit_code: int | None, timed_out: bool, seconds: float) -> None:
    """Count one finished run."""
    outcome = "timed_out" if timed_out else "succeeded" if exit_code == 0 else "failed"
    RUNS.labels(outcome).inc()
    RUN_SECONDS.observe(seconds)


def exposition() -> tuple[bytes, str]:
    """The registry in the Prometheus text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
