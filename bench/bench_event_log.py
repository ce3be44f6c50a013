"""Benchmark of the event log: appends, snapshot loads and replay, with same-run baselines.

    .venv/bin/python bench/bench_event_log.py [--output bench/results/event_log.md]

Prints a markdown table. Each ratio compares two measurements taken in this run on this
machine, so a busy machine slows both sides. Rows:

1. appending one ``MessageReceived`` through the application (``receive_message`` on an
   existing conversation: resolve the thread, load from the latest snapshot, guard, save)
   against a raw INSERT of a blob of the same size (sqlite3 in a WAL-mode file; psycopg into
   a plain table on PostgreSQL) -- target at most 3x;
2. loading a 1,000-event conversation with snapshots against without -- target >= 10x;
3. ``opsloop replay --format json`` of a 10,000-event conversation, in process and as a whole
   ``opsloop`` process -- target under 1 s.

The PostgreSQL rows run when ``OPSLOOP_TEST_POSTGRES_URL`` is set (a fresh database is
created for the run and dropped afterwards).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eventsourcing.application import Repository  # noqa: E402

from bot.app.application import ConversationApp, open_app  # noqa: E402
from bot.surface import Coordinates  # noqa: E402
from domain.conversation import Conversation  # noqa: E402

HERE = Coordinates("slack", "T1", "C1", "1700000000.1")
TEXT = "why is the disk on ci-3 full? here is df: " + "x" * 120


@dataclass
class Row:
    store: str
    measure: str
    value: str
    baseline: str
    ratio: str
    target: str
    met: bool


def best_per_op(fn: Callable[[], None], *, n: int, rounds: int = 3) -> float:
    """Seconds per call: the median of ``rounds`` rounds of ``n`` calls."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def stored_size(app: ConversationApp) -> int:
    """Size of a stored MessageReceived like the ones appended."""
    conv = Conversation.start(platform="x", workspace="", channel="", thread="size", started_by="a")
    conv.receive_message(message_key="k-000000", author="alice", text=TEXT)
    return len(app.mapper.to_stored_event(conv.collect_events()[-1]).state)


def paired(
    first: Callable[[], None], second: Callable[[], None], *, n: int, rounds: int = 7
) -> tuple[float, float]:
    """Seconds per call of each, alternating rounds so both see the same machine load."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for fn, out in ((first, times[0]), (second, times[1])):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            out.append((time.perf_counter() - t0) / n)
    return statistics.median(times[0]), statistics.median(times[1])


Inserter = tuple[Callable[[], None], Callable[[], None]]  # (insert one row, close)


def raw_sqlite_inserter(path: str, size: int) -> Inserter:
    """A raw sqlite3 INSERT of a blob of ``size`` bytes into a WAL-mode file."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE blobs (id TEXT, version INTEGER, topic TEXT, state BLOB, "
        "PRIMARY KEY (id, version))"
    )
    blob, counter = os.urandom(size), iter(range(10**9))

    def insert() -> None:
        conn.execute(
            "INSERT INTO blobs VALUES (?, ?, ?, ?)",
            ("a" * 32, next(counter), "domain.events:MessageReceived", blob),
        )

    return insert, conn.close


def raw_postgres_inserter(url: str, size: int) -> Inserter:
    """A raw psycopg INSERT (autocommit) of a blob of ``size`` bytes into a plain table."""
    import psycopg

    conn = psycopg.connect(url, autocommit=True)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS blobs (id UUID, version INTEGER, topic TEXT, "
        "state BYTEA, PRIMARY KEY (id, version))"
    )
    blob, counter, uid = os.urandom(size), iter(range(10**9)), uuid4()

    def insert() -> None:
        conn.execute(
            "INSERT INTO blobs VALUES (%s, %s, %s, %s)",
            (uid, next(counter), "domain.events:MessageReceived", blob),
        )

    return insert, conn.close


def grow(app: ConversationApp, *, events: int, thread: str) -> Conversation:
    """A realistic conversation of about ``events`` events, saved in batches."""
    coords = Coordinates("slack", "T1", "C1", thread)
    cid, _ = app.receive_message(coordinates=coords, message_key="k0", author="alice", text=TEXT)
    conv = app.get(cid)
    n = 0
    while conv.version < events:
        n += 1
        if conv.status != "open":
            conv.receive_message(message_key=f"k{n}", author="alice", text=TEXT)
        conv.record_model_reply(
            provider="ollama",
            model="llama3.1",
            text="let me look <helpers>df -h</helpers>",
            input_tokens=900,
            output_tokens=40,
            tokens_estimated=False,
            cost=0.0,
            priced=False,
            latency_ms=800,
            attempts=1,
            prompt_fingerprint="fp",
        )
        block = conv.last_turn_blocks[0].block_id
        conv.start_block(block_id=block, limits={"wall_s": 10, "memory_mb": 256})
        conv.finish_block(
            block_id=block,
            exit_code=0,
            signal=None,
            stdout="/dev/sda1 100G 99G 1G 99% /\n" * 5,
            stderr="",
            duration_ms=40,
            cpu_ms=10,
            timed_out=False,
            memory_exceeded=False,
            output_truncated=False,
            unsafe_local=False,
        )
        conv.answer(text="the disk is 99% full: /var/log")
        if len(conv.pending_events) >= 200 or conv.version >= events:
            app.save(conv)
    app.save(conv)
    return conv


@contextmanager
def env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def replay_in_process(url: str, cid: str) -> float:
    from bot.cli.log import replay

    sink = io.StringIO()
    with env(OPSLOOP_DATABASE_URL=url), redirect_stdout(sink):
        t0 = time.perf_counter()
        replay(cid, fmt="json")
        return time.perf_counter() - t0


def replay_process(url: str, cid: str) -> tuple[float, int]:
    cmd = [
        sys.executable,
        "-c",
        "from bot.cli import main; main()",
        "replay",
        cid,
        "--format",
        "json",
    ]
    e = {**os.environ, "OPSLOOP_DATABASE_URL": url}
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=e, capture_output=True, check=True)
    return time.perf_counter() - t0, out.stdout.count(b"\n")


def bench_store(name: str, url: str, baseline: Callable[[int], Inserter]) -> list[Row]:
    rows: list[Row] = []
    # Keyed, as in production: only sealed snapshots are used to load (docs/audit.md).
    app = open_app(database_url=url, audit_key=b"bench-audit-key-" * 2)
    try:
        # 1. append through the application vs a raw insert of the same size.
        cid, _ = app.receive_message(coordinates=HERE, message_key="warm", author="a", text=TEXT)
        counter = iter(range(10**9))

        def append() -> None:
            app.receive_message(
                coordinates=HERE, message_key=f"k-{next(counter):06d}", author="alice", text=TEXT
            )

        size = stored_size(app)
        raw_insert, close_raw = baseline(size)
        try:
            per_append, per_raw = paired(append, raw_insert, n=100)
        finally:
            close_raw()
        ratio = per_append / per_raw
        rows.append(
            Row(
                name,
                f"append one MessageReceived ({size} B stored)",
                f"{per_append * 1e3:.3f} ms",
                f"raw INSERT {per_raw * 1e3:.3f} ms",
                f"{ratio:.2f}x",
                "<= 3x",
                ratio <= 3,
            )
        )

        # 2. load a 1,000-event conversation with and without snapshots.
        conv = grow(app, events=1000, thread="load-1000")
        assert app.snapshots is not None
        # Uncached repositories, so each get really loads from the store.
        snapshotted = Repository(event_store=app.events, snapshot_store=app.snapshots)
        plain = Repository(event_store=app.events)
        with_snap = best_per_op(lambda: snapshotted.get(conv.id), n=20)
        without = best_per_op(lambda: plain.get(conv.id), n=5)
        speedup = without / with_snap
        rows.append(
            Row(
                name,
                f"load {conv.version}-event conversation with snapshots",
                f"{with_snap * 1e3:.2f} ms",
                f"without {without * 1e3:.2f} ms",
                f"{speedup:.1f}x faster",
                ">= 10x",
                speedup >= 10,
            )
        )

        # 3. replay --format json of 10,000 events.
        big = grow(app, events=10_000, thread="replay-10000")
        in_process = min(replay_in_process(url, str(big.id)) for _ in range(3))
        whole, lines = min(replay_process(url, str(big.id)) for _ in range(2))
        rows.append(
            Row(
                name,
                f"replay --format json, {lines} events (in process)",
                f"{in_process:.3f} s",
                "-",
                "-",
                "< 1 s",
                in_process < 1,
            )
        )
        rows.append(
            Row(
                name,
                f"replay --format json, {lines} events (whole opsloop process)",
                f"{whole:.3f} s",
                "-",
                "-",
                "< 1 s",
                whole < 1,
            )
        )
    finally:
        app.close()
    return rows


def postgres_rows(base: str) -> list[Row]:
    import psycopg

    name = f"opsloop_bench_{uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        return bench_store("PostgreSQL", url, lambda size: raw_postgres_inserter(url, size))
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    """Run the benchmark and print (and optionally save) its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        raw_path = f"{tmp}/raw.sqlite3"
        rows += bench_store(
            "SQLite",
            f"sqlite:///{tmp}/events.sqlite3",
            lambda size: raw_sqlite_inserter(raw_path, size),
        )
    pg = os.environ.get("OPSLOOP_TEST_POSTGRES_URL")
    skipped = "" if pg else "\nPostgreSQL: skipped (OPSLOOP_TEST_POSTGRES_URL is not set).\n"
    if pg:
        rows += postgres_rows(pg)
    lines = [
        f"# Event log benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs "
        "(shared with other work; ratios are measured in the same run).",
        "",
        "| store | measure | opsloop | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.store} | {r.measure} | {r.value} | {r.baseline} | {r.ratio} | {r.target} | "
        f"{'yes' if r.met else '**no**'} |"
        for r in rows
    ]
    text = "\n".join(lines) + "\n" + skipped
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)


if __name__ == "__main__":
    main()
