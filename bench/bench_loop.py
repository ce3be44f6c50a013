"""Loop overhead per step, against the raw event-append cost measured in the same run.

    .venv/bin/python bench/bench_loop.py [--conversations 20] [--concurrent 50] [--processes 5]

1. **Baseline**: one application command that appends one event (load, trigger, save), on a
   fresh SQLite file: the cost the loop cannot avoid, since it records every step.
2. **Loop**: whole conversations through the real ``LoopRunner`` (SQLite, the prompt builder,
   the scripted model, a no-op sandbox): 9 turns with one block each, then an answer, i.e.
   20 steps and 30 recorded events per conversation. Per step we report the wall time and the
   overhead beyond the appends it made (events per step x baseline). Target: < 5 ms per step.
3. **Concurrency**: 50 conversations run at once on one SQLite file; all must answer and every
   hash chain must verify.
4. **Processes and conflicts**: 5 processes x 10 conversations on one SQLite file, each
   conversation getting 3 more messages at the same moment as its loop's own records, so the
   application meets optimistic-concurrency conflicts; each must be retried to success (every
   conversation answered with all 4 messages recorded, chains verify, no error).

Results go to stdout and to bench/results/loop.md. Timings are medians of a few repeats; the
machine is shared, so read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app.application import ConversationApp, open_app  # noqa: E402
from bot.cli.bootstrap import build_service  # noqa: E402
from bot.config import Policy  # noqa: E402
from bot.loop.service import OpsloopService  # noqa: E402
from bot.providers.scripted import ScriptedModel  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.surface import Coordinates, Incoming  # noqa: E402
from sandbox.files import Outbox
from sandbox.result import RunResult  # noqa: E402

BLOCK_TURNS = 9
TURNS = [f"Step {n}.\n<helpers>\nprint({n})\n</helpers>" for n in range(1, BLOCK_TURNS + 1)]
TURNS.append("Done: nine steps.")
STEPS = 2 * BLOCK_TURNS + 2  # each block turn: CallModel + RunBlock; then CallModel + Answer
EVENTS = 1 + BLOCK_TURNS * 3 + 1 + 1  # message, (reply, started, finished) x 9, reply, answer
RESULTS = Path(__file__).parent / "results" / "loop.md"


class NoOpSandbox:
    """Returns a successful result at once: the loop's own cost is what is measured."""

    async def run(
        self, *, language: str, code: str, limits: Any = None, workspace: str | None = None
    ) -> RunResult:
        return RunResult(exit_code=0, signal=None, stdout="ok\n", stderr="", duration_ms=0)

    async def read_outbox(self, **_: Any) -> Outbox:
        return Outbox()  # blocks here write no files


class QuietProgress:
    async def thinking(self) -> None: ...
    async def model_text(self, chunk: str) -> None: ...
    async def block_started(self, **_: Any) -> None: ...
    async def block_finished(self, **_: Any) -> None: ...
    async def answered(self, text: str) -> None: ...
    async def stopped(self, **_: Any) -> None: ...


def service_on(path: Path) -> OpsloopService:
    settings = Settings(data_dir=path.parent, _env_file=None)  # type: ignore[call-arg]
    model = ScriptedModel(TURNS, label="bench", chunk_chars=1 << 16)
    app = open_app(database_url=f"sqlite:///{path}")
    return build_service(
        settings=settings, policy=Policy(), model=model, sandbox=NoOpSandbox(), app=app
    )


def coords(n: int | str) -> Coordinates:
    return Coordinates(platform="bench", workspace="w", channel="c", thread=str(n))


def baseline_append_ms(path: Path, *, conversations: int) -> float:
    """Median ms of one append command (load, trigger, save) on conversations as long as the
    loop's, i.e. the event log's unit of work that every recorded step costs at least once."""
    app = open_app(database_url=f"sqlite:///{path}")
    try:
        times = []
        for n in range(conversations):
            cid, _ = app.receive_message(
                coordinates=coords(f"base-{n}"), message_key=f"m{n}", author="a", text="hi"
            )
            for _ in range(EVENTS - 1):
                started = time.perf_counter()
                app.record_model_failure(cid, provider="p", model="m", error="e", attempts=1)
                times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)
    finally:
        app.close()


class Timed:
    """Wraps the application so the time spent inside it (in its worker threads) is known."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self.ms = 0.0

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._app, name)
        if not callable(target):
            return target

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return target(*args, **kwargs)
            finally:
                self.ms += (time.perf_counter() - started) * 1000

        return timed


async def one_conversation(service: OpsloopService, key: str) -> tuple[float, Any]:
    receipt = await service.receive(
        Incoming(coordinates=coords(key), message_key=key, author="bench", text="go")
    )
    started = time.perf_counter()
    outcome = await service.run(receipt.conversation_id, QuietProgress())
    return (time.perf_counter() - started) * 1000, outcome


async def loop_step_ms(path: Path, *, conversations: int) -> tuple[list[float], list[float]]:
    """Per conversation: wall ms per step, and ms per step spent inside the application."""
    service = service_on(path)
    timed = Timed(service.app)
    service.app = service.runner.app = timed  # type: ignore[assignment]
    try:
        per_step, in_app = [], []
        for n in range(conversations):
            timed.ms = 0.0
            elapsed, outcome = await one_conversation(service, f"seq-{n}")
            assert outcome.answer == "Done: nine steps.", outcome
            per_step.append(elapsed / STEPS)
            in_app.append(timed.ms / STEPS)  # receive ran before timed.ms was reset
        return per_step, in_app
    finally:
        await service.aclose()


async def concurrent(path: Path, *, count: int) -> dict[str, Any]:
    service = service_on(path)
    try:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(one_conversation(service, f"con-{n}-{uuid.uuid4().hex[:6]}") for n in range(count)),
            return_exceptions=True,
        )
        wall = time.perf_counter() - started
        errors = [r for r in results if isinstance(r, BaseException)]
        answered = [r for r in results if not isinstance(r, BaseException) and r[1].answer]
        app: ConversationApp = service.app  # type: ignore[assignment]
        report = app.verify()
        events = sum(len(app.timeline(s.conversation_id)) for s in app.list_conversations())
        return {
            "count": count,
            "answered": len(answered),
            "errors": [repr(e) for e in errors],
            "wall_s": wall,
            "verify_ok": bool(getattr(report, "ok", report)),
            "events": events,
        }
    finally:
        await service.aclose()


FOLLOW_UPS = 3  # messages sent at once into each conversation while its loop runs


async def _follow_ups(service: OpsloopService, key: str) -> None:
    """Messages written at the same moment as the loop's own records: write conflicts."""
    await asyncio.gather(
        *(
            service.receive(
                Incoming(coordinates=coords(key), message_key=f"{key}-{i}", author="b", text="and?")
            )
            for i in range(FOLLOW_UPS)
        )
    )


def count_conflicts() -> dict[str, int]:
    """Count the optimistic-concurrency conflicts the application meets (and retries)."""
    from eventsourcing.persistence import IntegrityError

    seen = {"conflicts": 0}
    save = ConversationApp.save

    def counting(self: ConversationApp, *args: Any, **kwargs: Any) -> Any:
        try:
            return save(self, *args, **kwargs)
        except IntegrityError:
            seen["conflicts"] += 1
            raise

    ConversationApp.save = counting  # type: ignore[method-assign]
    return seen


async def crowd(path: Path, *, worker: int, count: int) -> dict[str, Any]:
    """One worker process: ``count`` conversations at once, each with follow-ups mid-loop."""
    seen = count_conflicts()
    service = service_on(path)
    keys = [f"w{worker}-{n}" for n in range(count)]

    async def converse(key: str) -> Any:
        follow = asyncio.create_task(_follow_ups(service, key))
        _, outcome = await one_conversation(service, key)
        await follow
        # A follow-up may land after the answer: then this conversation is open again.
        return await service.run(outcome.conversation_id, QuietProgress())

    try:
        results = await asyncio.gather(*(converse(k) for k in keys), return_exceptions=True)
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
        return {"errors": errors, "conflicts": seen["conflicts"]}
    finally:
        await service.aclose()


def processes(path: Path, *, workers: int, each: int) -> dict[str, Any]:
    """``workers`` processes on one SQLite file; then every conversation is checked."""
    started = time.perf_counter()
    argv = [sys.executable, __file__, "--db", str(path), "--each", str(each), "--worker"]
    procs = [
        subprocess.Popen([*argv, str(k)], stdout=subprocess.PIPE, text=True) for k in range(workers)
    ]
    errors: list[str] = []
    conflicts = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        if proc.returncode or not out.strip():
            errors.append(f"a worker exited {proc.returncode} after printing {out[-200:]!r}")
            continue
        report = json.loads(out.strip().splitlines()[-1])
        errors += report["errors"]
        conflicts += report["conflicts"]
    wall = time.perf_counter() - started
    app = open_app(database_url=f"sqlite:///{path}")
    try:
        rows = app.list_conversations()
        settled = [r for r in rows if r.status == "answered" and r.messages == 1 + FOLLOW_UPS]
        verdict = app.verify()
    finally:
        app.close()
    return {
        "count": workers * each,
        "conversations": len(rows),
        "settled": len(settled),
        "errors": errors,
        "conflicts": conflicts,
        "wall_s": wall,
        "verify_ok": bool(getattr(verdict, "ok", verdict)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--each", type=int, default=10, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:  # a child of the multi-process run
        print(json.dumps(asyncio.run(crowd(args.db, worker=args.worker, count=args.each))))
        return
    with tempfile.TemporaryDirectory(prefix="opsloop-bench-") as scratch:
        root = Path(scratch)
        append = baseline_append_ms(root / "baseline.sqlite3", conversations=10)
        steps, in_app = asyncio.run(
            loop_step_ms(root / "loop.sqlite3", conversations=args.conversations)
        )
        together = asyncio.run(concurrent(root / "concurrent.sqlite3", count=args.concurrent))
        each = max(1, args.concurrent // args.processes)
        spread = processes(root / "processes.sqlite3", workers=args.processes, each=each)
    step = statistics.median(steps)
    app_ms = statistics.median(in_app)
    per_step_events = (EVENTS - 1) / STEPS  # the message is recorded before the loop runs
    ok = (
        together["answered"] == together["count"]
        and not together["errors"]
        and together["verify_ok"]
    )
    spread_ok = (
        spread["settled"] == spread["count"] == spread["conversations"]
        and not spread["errors"]
        and spread["verify_ok"]
    )
    spread_verdict = "OK" if spread_ok else "FAILED"
    lines = [
        "# Loop benchmark",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"Python {platform.python_version()}, "
        f"{platform.machine()}, SQLite file store, scripted model, no-op sandbox. "
        "`.venv/bin/python bench/bench_loop.py`",
        "",
        "| measure | value |",
        "|---|---|",
        "| baseline: one event append (app command: load, trigger, save; median) "
        f"| {append:.2f} ms |",
        f"| loop wall time per step (median of {args.conversations} conversations x {STEPS} steps) "
        f"| {step:.2f} ms |",
        f"| events recorded per step | {per_step_events:.2f} |",
        f"| of which inside the application (loads, appends, timeline reads) | {app_ms:.2f} ms |",
        f"| loop's own overhead per step (prompt building, threads, model, sandbox port) "
        f"| {step - app_ms:.2f} ms |",
        f"| step / append ratio | {step / append:.1f}x |",
        f"| target: < 5 ms per step | {'met' if step < 5 else 'NOT met'} |",
        "",
        f"Concurrency: {together['count']} conversations at once on one SQLite file: "
        f"{together['answered']} answered, {len(together['errors'])} errors, "
        f"{together['events']} events, hash chains verify: {together['verify_ok']}, "
        f"wall {together['wall_s']:.2f} s -> {'OK' if ok else 'FAILED'}.",
    ]
    lines += [
        "",
        f"Processes: {args.processes} processes x {each} conversations at once on one SQLite file, "
        f"each conversation getting {FOLLOW_UPS} more messages at once while its loop runs: "
        f"{spread['conflicts']} optimistic-concurrency conflicts met and retried, "
        f"{spread['settled']} of {spread['count']} conversations answered with all "
        f"{1 + FOLLOW_UPS} messages recorded, {len(spread['errors'])} errors, hash chains verify: "
        f"{spread['verify_ok']}, wall {spread['wall_s']:.2f} s -> {spread_verdict}.",
    ]
    for name, found in (("Errors", together["errors"]), ("Process errors", spread["errors"])):
        if found:
            lines += ["", f"{name}:", *[f"- {e}" for e in found[:5]]]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    if not (ok and spread_ok):
        sys.exit(1)


if __name__ == "__main__":
    main()
