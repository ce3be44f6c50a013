"""Benchmark of one tool call from a block: a no-op command tool against the same command run
directly on the host, in the same run.

    .venv/bin/python bench/bench_tools.py [--calls 100] [--rounds 3] [--out FILE]

The whole path is real: the loop (``build_service``) on a SQLite file, the scripted model
whose block calls ``tools.noop()`` ``--calls`` times in a real nsjail (timing each call
inside the jail), the tool channel, the broker (policy, validation, ``ToolCalled`` and
``ToolReturned`` recorded for every call), the registry and the command ``true`` spawned on
the host. The baseline is ``true`` spawned by the same host code (``run_process``) and by
a bare ``asyncio.create_subprocess_exec``, measured before and after each round so the
machine's noise falls on both. Target (issue 11): a call adds under 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app.application import open_app  # noqa: E402
from bot.cli.bootstrap import build_service  # noqa: E402
from bot.config import Policy  # noqa: E402
from bot.providers.scripted import ScriptedModel  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.surface import Coordinates, Incoming  # noqa: E402
from sandbox.jail import NsjailSandbox  # noqa: E402
from sandbox.limits import Limits  # noqa: E402
from sandbox.process import run_process  # noqa: E402
from sandbox.workspace import Workspaces  # noqa: E402

TRUE = "/bin/true"
BLOCK = """<helpers>
import json, time, tools
tools.noop()  # warm: the listing and the first connection
took = []
for _ in range({calls}):
    t = time.perf_counter()
    tools.noop()
    took.append(time.perf_counter() - t)
print(json.dumps(took))
</helpers>"""


class Quiet:
    """A Progress that shows nothing."""

    async def thinking(self) -> None: ...
    async def model_text(self, chunk: str) -> None: ...
    async def block_started(self, **_: object) -> None: ...
    async def block_finished(self, **_: object) -> None: ...
    async def approval_requested(self, request: object) -> None: ...
    async def answered(self, text: str) -> None: ...
    async def stopped(self, **_: object) -> None: ...


async def direct(calls: int) -> tuple[list[float], list[float]]:
    """``true`` spawned through ``run_process`` (the command tool's own spawn) and bare."""
    ours, bare = [], []
    for _ in range(calls):
        started = time.perf_counter()
        await run_process([TRUE], env={}, timeout=10, output_bytes=1024)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(TRUE)
        await process.wait()
        bare.append(time.perf_counter() - started)
    return ours, bare


async def through_a_block(scratch: Path, calls: int, round_: int) -> list[float]:
    """Per-call times measured in the jail, for one block making ``calls`` calls."""
    policy = Policy.model_validate(
        {"tools": {"calls_per_block": calls + 1, "noop": {"kind": "command", "argv": [TRUE]}}}
    )
    workspaces = Workspaces(
        root=scratch / "ws", quota_bytes=1 << 20, idle_seconds=60, fs="directory"
    )
    sandbox = NsjailSandbox.create(workspaces=workspaces, default_limits=Limits(wall_seconds=120))
    app = open_app(database_url=f"sqlite:///{scratch / f'events-{round_}.sqlite3'}")
    service = build_service(
        settings=Settings(database_url="memory:"),
        policy=policy,
        model=ScriptedModel([BLOCK.format(calls=calls), "done"]),
        sandbox=sandbox,
        app=app,
    )
    try:
        where = Coordinates("cli", "bench", "bench", f"round-{round_}")
        receipt = await service.receive(Incoming(where, f"m{round_}", "bench", "go"))
        await service.run(receipt.conversation_id, Quiet())
        timeline = await service.timeline(receipt.conversation_id)
    finally:
        await service.aclose()
        await sandbox.aclose()
    finished = next(e for e in timeline if e["type"] == "BlockFinished")
    returned = [e for e in timeline if e["type"] == "ToolReturned"]
    assert len(returned) == calls + 1 and all(e["ok"] for e in returned), finished["stderr"]
    return [float(x) for x in json.loads(finished["stdout"])]


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children (jails, tools): unlike wall time,
    it does not grow with the other load on a shared machine."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


async def cpu_per_call(work: Awaitable[object], calls: int) -> float:
    """CPU ms per call spent by ``work``."""
    before = cpu_seconds()
    await work
    return (cpu_seconds() - before) * 1000 / calls


async def main(calls: int, rounds: int) -> str:
    tool: list[float] = []
    ours: list[float] = []
    bare: list[float] = []
    cpu_tool: list[float] = []
    cpu_direct: list[float] = []
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        scratch.chmod(0o755)
        for round_ in range(rounds):  # baseline, calls, baseline: the noise falls on both
            for target, values in zip((ours, bare), await direct(calls // 2), strict=True):
                target += values
            tool += await through_a_block(scratch, calls, round_)
            for target, values in zip((ours, bare), await direct(calls // 2), strict=True):
                target += values
            cpu_direct.append(await cpu_per_call(direct(calls), 2 * calls))
            cpu_tool.append(await cpu_per_call(through_a_block(scratch, calls, -1 - round_), calls))
    call, spawn, plain = median_ms(tool), median_ms(ours), median_ms(bare)
    p90 = sorted(tool)[int(0.9 * (len(tool) - 1))] * 1000
    return "\n".join(
        [
            f"# One tool call from a block ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
            "",
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (shared machine); "
            f"{rounds} rounds of {calls} calls, real nsjail, events on a SQLite file.",
            "",
            "| what | median ms | / `true` via run_process |",
            "|---|---|---|",
            f"| `tools.noop()` from a block (command tool `true`) | {call:.2f} (p90 {p90:.2f}) "
            f"| {call / spawn:.2f}x |",
            f"| `true` spawned on the host by `run_process` | {spawn:.2f} | 1.00x |",
            f"| `true` spawned by bare `asyncio.create_subprocess_exec` | {plain:.2f} "
            f"| {plain / spawn:.2f}x |",
            "",
            f"A call adds **{call - spawn:.2f} ms** to running the command itself "
            f"({call - plain:.2f} ms over a bare spawn). Target: under 5 ms.",
            "",
            f"CPU per call (this process and its children; load-independent): "
            f"{statistics.median(cpu_tool):.2f} ms through a block, the block's own start and "
            f"the model turns included, against {statistics.median(cpu_direct):.2f} ms for "
            "one `true` spawned on the host.",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = asyncio.run(main(args.calls, args.rounds))
    print(report)
    if args.out:
        args.out.write_text(report + "\n")
