"""Messages per second recorded and answered by 1, 2 and 3 replicas on one PostgreSQL.

    OPSLOOP_TEST_POSTGRES_URL=postgresql://... .venv/bin/python bench/bench_replicas.py \
        [--messages 60] [--rounds 2]

Each replica is a process of its own with the real application on the shared database and
the real loop runner (leases, fencing, stop watch), a scripted model (one block, then an
answer) and a no-op sandbox: what is measured is opsloop's own work and the store's. A load
balancer's share is played by giving replica ``i`` of ``K`` the messages ``i, i+K, ...``; all
start at one instant, and the rate is messages over the wall time until the last answer.
Each message is a conversation of its own (the lease lets one replica run each).

The lease's added latency per loop run is timed inside the workers: ``claim_loop`` (the
lease row's upsert and the ``LoopClaimed`` record) and ``release_loop``, per run, against
the whole run (receive, claim, model, block, answer, release). Results go to stdout and to
bench/results/replicas.md. The machine is shared: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app.application import ConversationApp, open_app  # noqa: E402
from bot.config import Policy  # noqa: E402
from bot.loop.runner import LoopRunner  # noqa: E402
from bot.loop.service import OpsloopService  # noqa: E402
from bot.prompt.builder import prompt_builder  # noqa: E402
from bot.providers.scripted import ScriptedModel  # noqa: E402
from bot.surface import Coordinates, Incoming  # noqa: E402
from domain.limits import LoopLimits  # noqa: E402
from sandbox.result import RunResult  # noqa: E402

TURNS = ["Checking.\n<helpers>\nprint(1)\n</helpers>", "All fine."]
RESULTS = Path(__file__).parent / "results" / "replicas.md"


class NoOpSandbox:
    async def run(self, **_: Any) -> RunResult:
        return RunResult(exit_code=0, signal=None, stdout="1\n", stderr="", duration_ms=0)


class QuietProgress:
    async def thinking(self) -> None: ...
    async def model_text(self, chunk: str) -> None: ...
    async def block_started(self, **_: Any) -> None: ...
    async def block_finished(self, **_: Any) -> None: ...
    async def answered(self, text: str) -> None: ...
    async def stopped(self, **_: Any) -> None: ...


def timed(app: ConversationApp, name: str, into: list[float]) -> None:
    """Wrap ``app.name`` so each call's milliseconds are appended to ``into``."""
    inner = getattr(app, name)

    def call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            into.append((time.perf_counter() - started) * 1000)

    setattr(app, name, call)


async def work(url: str, index: int, replicas: int, messages: int, start_at: float) -> None:
    app = open_app(database_url=url)
    lease_ms: list[float] = []
    timed(app, "claim_loop", lease_ms)
    timed(app, "release_loop", lease_ms)
    model = ScriptedModel(TURNS, label="bench", chunk_chars=1 << 16)
    runner = LoopRunner(
        app=app,
        model=model,
        sandbox=NoOpSandbox(),
        limits=LoopLimits(),
        build_prompt=prompt_builder(policy=Policy(), model_name=model.name),
    )
    service = OpsloopService(app=app, runner=runner, model_name=model.name)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    cpu = time.process_time()
    run_ms = []
    for n in range(index, messages, replicas):
        started = time.perf_counter()
        key = f"m{n}-{uuid4().hex[:8]}"
        where = Coordinates(platform="bench", workspace="w", channel="c", thread=key)
        receipt = await service.receive(Incoming(where, key, "alice", "all ok?"))
        outcome = await service.run(receipt.conversation_id, QuietProgress())
        assert outcome.answer == "All fine.", outcome
        run_ms.append((time.perf_counter() - started) * 1000)
    finished = time.time()
    cpu = time.process_time() - cpu
    app.close()
    print(json.dumps({"finished": finished, "cpu": cpu, "run_ms": run_ms, "lease_ms": lease_ms}))


def fresh_database(url: str) -> str:
    import psycopg

    name = f"opsloop_bench_{uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    fresh = url.rsplit("/", 1)[0] + "/" + name
    open_app(database_url=fresh).close()  # migrated once, before the clock starts
    return fresh


def drop_database(url: str, fresh: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {fresh.rsplit('/', 1)[1]} WITH (FORCE)")


def one_round(url: str, replicas: int, messages: int) -> dict[str, Any]:
    fresh = fresh_database(url)
    try:
        start_at = time.time() + 3.0  # every worker imported and connected by then
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    fresh,
                    str(i),
                    str(replicas),
                    str(messages),
                    str(start_at),
                ],
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ},
            )
            for i in range(replicas)
        ]
        reports = []
        for w in workers:
            out, _ = w.communicate(timeout=600)
            assert w.returncode == 0, out
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        drop_database(url, fresh)
    wall = max(r["finished"] for r in reports) - start_at
    runs = [ms for r in reports for ms in r["run_ms"]]
    lease = [ms for r in reports for ms in r["lease_ms"]]
    cpu = sum(r["cpu"] for r in reports) / messages * 1000
    return {"wall": wall, "rate": messages / wall, "runs": runs, "lease": lease, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--worker", nargs=5)
    args = parser.parse_args()
    if args.worker:
        url, index, replicas, messages, start_at = args.worker
        asyncio.run(work(url, int(index), int(replicas), int(messages), float(start_at)))
        return
    url = os.environ.get("OPSLOOP_TEST_POSTGRES_URL")
    if not url:
        sys.exit("set OPSLOOP_TEST_POSTGRES_URL (scripts/pg-temp starts a throwaway server)")
    best: dict[int, dict[str, Any]] = {}
    for _ in range(args.rounds):  # interleaved, so the shared machine's noise falls on all
        for replicas in (1, 2, 3):
            found = one_round(url, replicas, args.messages)
            if replicas not in best or found["rate"] > best[replicas]["rate"]:
                best[replicas] = found
    report(best, messages=args.messages, rounds=args.rounds)


def report(best: dict[int, dict[str, Any]], *, messages: int, rounds: int) -> None:
    base = best[1]["rate"]
    lines = [
        "# Replicas on one PostgreSQL",
        "",
        f"`bench/bench_replicas.py --messages {messages} --rounds {rounds}` on "
        f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other work), Python "
        f"{platform.python_version()}. Each message is one conversation: record, claim the "
        "lease, one model turn with one block (scripted model, no-op sandbox), the answer, "
        "release. Best round of each.",
        "",
        "| replicas | wall s | messages/s | scaling vs 1 replica | CPU ms per message (opsloop) |",
        "|---|---|---|---|---|",
    ]
    for replicas, found in sorted(best.items()):
        lines.append(
            f"| {replicas} | {found['wall']:.2f} | {found['rate']:.1f} | "
            f"{found['rate'] / base:.2f}x | {found['cpu']:.1f} |"
        )
    runs = [ms for f in best.values() for ms in f["runs"]]
    per_run = len(best[1]["lease"]) / max(len(best[1]["runs"]), 1)
    lease = [sum(pair) for pair in zip(*[iter(best[1]["lease"])] * 2, strict=False)]
    lines += [
        "",
        "| loop run (1 replica) | median ms |",
        "|---|---|",
        f"| whole run: receive, claim, model, block, answer, release | "
        f"{statistics.median(best[1]['runs']):.1f} |",
        f"| the lease: claim_loop + release_loop ({per_run:.0f} calls a run) | "
        f"{statistics.median(lease):.1f} |",
        f"| the lease's share of a run | "
        f"{statistics.median(lease) / statistics.median(best[1]['runs']):.0%} |",
        "",
        f"All runs, every replica count: median {statistics.median(runs):.1f} ms.",
        "",
        f"The replicas, PostgreSQL and the driver share {os.cpu_count()} CPUs here, and a run "
        "is CPU work in Python: the rate cannot grow past the CPUs, whatever the replica "
        "count. The CPU per message is the other figure to read: what each replica adds "
        "(lease round trips, the keeper, contention on shared CPUs) shows there. Scaling past "
        "this host's CPUs is not measured here.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
