"""Benchmark of the audit: verify and checkpoint against replay, and the keyed append's cost.

    .venv/bin/python bench/bench_audit.py [--output bench/results/audit.md]

Prints a markdown table; every ratio compares two measurements taken in this run on this
machine (a busy machine slows both sides). Rows, on a SQLite file:

1. ``audit verify --all`` of 10,000 events across 100 conversations (read-only reader, every
   seal, chain, listing row and snapshot checked) against ``replay --format json`` of the same
   10,000 events (all 100 conversations, rendered) -- in process, best of 3;
2. ``audit checkpoint`` of the same store against the same replay;
3. appending one ``MessageReceived`` with the keyed seal against the same append on an
   unkeyed store, in alternating rounds -- target at most 10% slower (1.10x).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app.application import ConversationApp, open_app  # noqa: E402
from bot.audit.checkpoint import make  # noqa: E402
from bot.audit.reader import open_reader  # noqa: E402
from bot.audit.replay import render, timeline_of  # noqa: E402
from bot.audit.scan import scan  # noqa: E402
from bot.audit.snapshots_audit import heads, read_snapshots  # noqa: E402
from bot.audit.verify import verify_log  # noqa: E402
from bot.ports import ModelReply  # noqa: E402
from bot.surface import Coordinates  # noqa: E402

KEY = b"bench-audit-key-" * 2
TEXT = "why is the disk on ci-3 full? here is df: " + "x" * 120


def reply(n: int) -> ModelReply:
    return ModelReply(text=f"turn {n}: " + "y" * 80, provider="ollama", model="llama3.1",
                      input_tokens=400, output_tokens=80, tokens_estimated=False, cost=0.0,
                      priced=False, latency_ms=250, attempts=1)  # fmt: skip


def fill(app: ConversationApp, *, conversations: int, events_each: int) -> None:
    for c in range(conversations):
        where = Coordinates("slack", "T1", f"C{c}", "1.1")
        cid, _ = app.receive_message(coordinates=where, message_key="m", author="alice", text=TEXT)
        for n in range(events_each - 2):  # Started and the first message: 2 events
            app.record_model_reply(cid, reply=reply(n), prompt_fingerprint="f")
    app.list_conversations()
    app.usage()  # the usage ledger caught up too: verify checks every row of it


def best(fn: Callable[[], object], rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def replay_all(url: str) -> None:
    reader = open_reader(url, cipher_key=None, audit_key=None)
    try:
        for cid in reader.ids():
            items = timeline_of(reader.mapper.to_state(s) for s in reader.events(cid))
            for _ in render(items, fmt="json"):
                pass
    finally:
        reader.close()


def verify_all(url: str) -> None:
    reader = open_reader(url, cipher_key=None, audit_key=KEY)
    try:
        report = verify_log(reader)
        assert report.intact and report.events == 10_000, report
    finally:
        reader.close()


def checkpoint_all(url: str) -> None:
    reader = open_reader(url, cipher_key=None, audit_key=KEY)
    try:
        sc = scan(reader)
        snaps = heads(read_snapshots(reader, sc.by_conversation()))
        make(sc, key=KEY, now=datetime.now(UTC), snapshots=snaps)
    finally:
        reader.close()


def paired(first: Callable[[], None], second: Callable[[], None], *, n: int,
           rounds: int = 9) -> tuple[float, float]:  # fmt: skip
    times: tuple[list[float], list[float]] = ([], [])
    for r in range(rounds):
        pair = ((first, times[0]), (second, times[1]))
        for fn, out in pair if r % 2 == 0 else pair[::-1]:  # neither always goes first
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            out.append((time.perf_counter() - t0) / n)
    return statistics.median(times[0]), statistics.median(times[1])


def appender(app: ConversationApp, thread: str) -> Callable[[], None]:
    where = Coordinates("slack", "T1", "CA", thread)
    app.receive_message(coordinates=where, message_key="warm", author="a", text=TEXT)
    counter = iter(range(10**9))

    def append() -> None:
        app.receive_message(coordinates=where, message_key=f"k-{next(counter):06d}",
                            author="alice", text=TEXT)  # fmt: skip

    return append


def encode_row() -> tuple[str, str, str, str, str, bool]:
    """The seal's own cost: encoding one event for storage, keyed against unkeyed."""
    from domain.conversation import Conversation

    keyed = open_app(database_url="memory:", audit_key=KEY)
    plain = open_app(database_url="memory:")
    conv = Conversation.start(platform="x", workspace="", channel="", thread="t", started_by="a")
    conv.receive_message(message_key="k", author="alice", text=TEXT)
    event = conv.collect_events()[-1]
    try:
        per_keyed, per_plain = paired(
            lambda: keyed.mapper.to_stored_event(event),
            lambda: plain.mapper.to_stored_event(event),
            n=2000,
        )
    finally:
        keyed.close()
        plain.close()
    return ("encode one event for storage (mapper), keyed seal", f"{per_keyed * 1e6:.1f} us",
            f"unkeyed {per_plain * 1e6:.1f} us", f"{per_keyed / per_plain:.2f}x",
            "(part of the append above)", True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/audit.sqlite3"
        app = open_app(database_url=url, audit_key=KEY)
        fill(app, conversations=100, events_each=100)
        app.close()
        with redirect_stdout(io.StringIO()):
            base = best(lambda: replay_all(url))
        verify = best(lambda: verify_all(url))
        checkpoint = best(lambda: checkpoint_all(url))
        rows.append(("audit verify --all, 10,000 events / 100 conversations",
                     f"{verify:.3f} s", f"replay --format json {base:.3f} s",
                     f"{verify / base:.2f}x", "-", True))  # fmt: skip
        rows.append(("audit checkpoint, same store", f"{checkpoint:.3f} s",
                     f"replay --format json {base:.3f} s", f"{checkpoint / base:.2f}x", "-",
                     True))  # fmt: skip
        keyed = open_app(database_url=f"sqlite:///{tmp}/keyed.sqlite3", audit_key=KEY)
        plain = open_app(database_url=f"sqlite:///{tmp}/plain.sqlite3")
        try:
            per_keyed, per_plain = paired(appender(keyed, "k"), appender(plain, "p"), n=100)
        finally:
            keyed.close()
            plain.close()
        ratio = per_keyed / per_plain
        rows.append(("append one MessageReceived, keyed seal", f"{per_keyed * 1e3:.3f} ms",
                     f"unkeyed {per_plain * 1e3:.3f} ms", f"{ratio:.2f}x", "<= 1.10x",
                     ratio <= 1.10))  # fmt: skip
        rows.append(encode_row())
    cpus = os.cpu_count()
    lines = [
        f"# Audit benchmark ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Python {platform.python_version()} on {platform.machine()}, {cpus} CPUs (shared with "
        "other work; ratios are measured in the same run). SQLite file store.",
        "",
        "| measure | opsloop | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
        *(
            f"| {m} | {v} | {b} | {r} | {t} | {'yes' if ok else '**no**'} |"
            for m, v, b, r, t, ok in rows
        ),  # fmt: skip
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
