"""Warm kernels (issue 16), measured in one run against bare ``python3 -c 'print(1)'``.

Run through ``bench/bench_sandbox.py --kernels [--runs 40] [--out FILE]``. Cases:

- ``print(1)`` in a warm kernel, in process and through ``opsloop serve sandbox`` (on loopback
  TCP, and a second service on its unix socket, ``--socket``);
- the first block of a new conversation, with the prestarted pool (refilled, untimed,
  before every case, as it is between conversations that do not start within milliseconds
  of each other) and without it;
- a block with warm kernels off (the one-jail-per-block baseline);
- throughput of 8 conversations running blocks at once, warm, in process and via the service;
- RSS of the service holding 32 warm kernels (and of the kernels' jails);
- a 50 MB file: loaded in block 1, queried in block 2, against reading it again in block 2.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.client import SandboxClient  # noqa: E402
from sandbox.errors import SandboxUnavailable  # noqa: E402
from sandbox.jail import NsjailSandbox  # noqa: E402
from sandbox.kernels import KernelOptions  # noqa: E402
from sandbox.limits import Limits  # noqa: E402
from sandbox.workspace import Workspaces  # noqa: E402

LIMITS = Limits(wall_seconds=10)
BIG = Limits(wall_seconds=60, memory_mb=1024, file_size_mb=128)
QUOTA = 256 << 20  # the default [sandbox] workspace_quota_mb
DATA_LINES = 880_000  # about 50 MB of log lines
MAKE_DATA = (
    "import random\nrandom.seed(1)\nlevels = ['INFO'] * 9 + ['ERROR']\n"
    "with open('/workspace/app.log', 'w') as f:\n"
    f"    for n in range({DATA_LINES}):\n"
    "        f.write(f'2026-11-30T20:{n % 60:02d}:00 {random.choice(levels)} "
    "request {n} served in {random.randint(1, 900)} ms\\n')\n"
    "import os\nprint(os.path.getsize('/workspace/app.log'))"
)
LOAD = "lines = open('/workspace/app.log').read().splitlines()"
QUERY = "print(sum(1 for line in lines if ' ERROR ' in line))"

Case = Callable[[], Awaitable[object]]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bare(argv: list[str]) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert out == b"1\n", out


def check(result: object, stdout: str = "1\n", kernel: str | None = None) -> None:
    assert getattr(result, "stdout", None) == stdout, result
    assert kernel is None or getattr(result, "kernel", None) == kernel, result


async def pool_ready(jail: NsjailSandbox, seconds: float = 5.0) -> bool:
    """Wait (untimed) until the prestarted pool is full again; False if it did not fill."""
    kernels = jail.kernels()
    if not kernels.warm and not kernels.pool:
        return True  # no block ran yet: the pool fills after the first one
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if len(kernels.pool) >= kernels.options.prestarted:
            return True
        await asyncio.sleep(0.01)
    return False


async def timed(
    cases: dict[str, Case], runs: int, before: dict[str, Case]
) -> dict[str, list[float]]:
    """Wall ms of each case, one run of each per round, in turn (``before``: untimed)."""
    for name, case in cases.items():
        if name in before:
            await before[name]()
        await case()  # warm caches (and start the warm cases' kernels)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, case in cases.items():
            if name in before:
                await before[name]()
            start = time.perf_counter()
            await case()
            samples[name].append((time.perf_counter() - start) * 1000)
    return samples


async def burst(run: Callable[[str], Awaitable[object]], conversations: int, each: int) -> float:
    """Blocks/s of ``conversations`` conversations running ``each`` blocks in turn, at once."""
    names = [f"burst-{uuid.uuid4().hex[:8]}" for _ in range(conversations)]
    await asyncio.gather(*(run(name) for name in names))  # their kernels start

    async def one(name: str) -> None:
        for _ in range(each):
            await run(name)

    start = time.perf_counter()
    await asyncio.gather(*(one(name) for name in names))
    return conversations * each / (time.perf_counter() - start)


def latency_cases(
    jail: NsjailSandbox,
    nopool: NsjailSandbox,
    clients: tuple[SandboxClient, SandboxClient],
    python: str,
) -> tuple[dict[str, Case], dict[str, Case]]:
    client, unix = clients  # the service on loopback TCP, and a second one on a unix socket

    async def warm() -> None:
        check(await jail.run(language="python", code="print(1)", limits=LIMITS, workspace="w1"))

    async def remote() -> None:
        result = await client.run(language="python", code="print(1)", limits=LIMITS, workspace="w2")
        check(result)

    async def local_socket() -> None:
        result = await unix.run(language="python", code="print(1)", limits=LIMITS, workspace="w4")
        check(result)

    def first(sandbox: NsjailSandbox) -> Case:
        async def run() -> None:
            name = f"new-{uuid.uuid4().hex[:10]}"
            result = await sandbox.run(
                language="python", code="print(1)", limits=LIMITS, workspace=name
            )
            check(result, kernel="new")

        return run

    async def cold() -> None:
        result = await jail.run(
            language="python", code="print(1)", limits=LIMITS, workspace="w3", warm=False
        )
        check(result, kernel="new")

    cases = {
        f"bare `{python} -c 'print(1)'`": lambda: bare([python, "-c", "print(1)"]),
        "warm kernel, in process": warm,
        "warm kernel, HTTP service": remote,
        "warm kernel, HTTP service on its unix socket": local_socket,
        "first block of a new conversation, prestarted pool": first(jail),
        "first block of a new conversation, no pool": first(nopool),
        "warm kernels off (one jail per block), in process": cold,
    }

    async def refill() -> None:
        if not await pool_ready(jail):
            print("warning: the pool did not refill within 5 s", file=sys.stderr)

    # Every case starts with the pool full: refilling it after a first block (a jail, mkfs and
    # mount, about 100 ms of CPU) is background work, not the next case's latency.
    return cases, dict.fromkeys(cases, refill)


async def state_rows(jail: NsjailSandbox, python: str, runs: int) -> list[str]:
    """What state buys: query a 50 MB file loaded in an earlier block, or read it again."""

    async def run(code: str, workspace: str, *, warm: bool = True) -> object:
        result = await jail.run(
            language="python", code=code, limits=BIG, workspace=workspace, warm=warm
        )
        assert result.exit_code == 0, result
        return result

    made = await run(MAKE_DATA, "data", warm=False)
    size = int(made.stdout)  # type: ignore[attr-defined]
    start = time.perf_counter()
    await run(LOAD, "data")
    load_ms = (time.perf_counter() - start) * 1000
    samples: dict[str, list[float]] = {"query": [], "reread": [], "bare": []}
    cases: dict[str, Case] = {
        "query": lambda: run(QUERY, "data"),
        "reread": lambda: run(LOAD + "\n" + QUERY, "data", warm=False),
        "bare": lambda: bare([python, "-c", "print(1)"]),
    }
    for _ in range(max(3, runs // 8)):
        for name, case in cases.items():
            start = time.perf_counter()
            await case()
            samples[name].append((time.perf_counter() - start) * 1000)
    base = statistics.median(samples["bare"])
    query, reread = statistics.median(samples["query"]), statistics.median(samples["reread"])
    return [
        f"A file of {size / 1e6:.1f} MB ({DATA_LINES:,} log lines) in the workspace; block 1 "
        f"loads it (`{LOAD}`: {load_ms:.0f} ms, once), then:",
        "",
        "| block 2 | p50 ms | p50 / bare |",
        "|---|---|---|",
        f"| the query, on `lines` kept in the warm kernel | {query:.1f} | {query / base:.2f}x |",
        f"| reading and splitting the file again, then the query (warm kernels off) "
        f"| {reread:.1f} | {reread / base:.2f}x |",
        f"| bare `{python} -c 'print(1)'` | {base:.1f} | 1.00x |",
        "",
        f"Keeping the loaded lines makes block 2 {reread / query:.1f}x faster.",
    ]


def rss_mb(pid: int) -> tuple[float, float, int]:
    """RSS of a process, and the total RSS of the python interpreters below it (MB)."""
    process = psutil.Process(pid)
    kernels = [p for p in process.children(recursive=True) if p.name().startswith("python")]
    total = 0
    for kernel in kernels:
        try:
            total += kernel.memory_info().rss
        except psutil.Error:
            continue
    return process.memory_info().rss / 1e6, total / 1e6, len(kernels)


async def service_rows(client: SandboxClient, pid: int) -> list[str]:
    """Throughput through the service, and its RSS with 32 warm kernels."""

    async def remote(name: str) -> None:
        check(await client.run(language="python", code="print(1)", limits=LIMITS, workspace=name))

    idle, _, _ = rss_mb(pid)
    rate = await burst(remote, 8, 25)
    names = [f"rss-{n}" for n in range(32)]
    await asyncio.gather(*(remote(name) for name in names))
    await asyncio.gather(*(remote(name) for name in names))  # all 32 still warm
    service, kernels, count = rss_mb(pid)
    return [
        f"| 8 conversations at once, warm, HTTP service | {rate:.0f} |",
        "",
        f"RSS of `opsloop serve sandbox`: {idle:.1f} MB before these cases, {service:.1f} MB "
        f"holding 32 warm kernels (max_kernels); the {count} jailed interpreters below it "
        f"use {kernels:.0f} MB together ({kernels / max(count, 1):.1f} MB each).",
    ]


async def measure(
    data: Path, clients: tuple[SandboxClient, SandboxClient], service_pid: int, runs: int
) -> list[str]:
    workspaces = Workspaces(root=data / "workspaces", quota_bytes=QUOTA, idle_seconds=3600)
    jail = NsjailSandbox.create(workspaces=workspaces, kernels=KernelOptions(prestarted=2))
    nopool = NsjailSandbox.create(workspaces=workspaces, kernels=KernelOptions(prestarted=0))
    python = jail.layout.interpreter("python").path
    try:
        cases, before = latency_cases(jail, nopool, clients, python)
        samples = await timed(cases, runs, before)

        async def local(name: str) -> None:
            check(await jail.run(language="python", code="print(1)", limits=LIMITS, workspace=name))

        rate = await burst(local, 8, 25)
        service = await service_rows(clients[0], service_pid)
        state = await state_rows(jail, python, runs)
    finally:
        await jail.aclose()
        await nopool.aclose()
        await asyncio.to_thread(workspaces.prune, now=time.time() + 10 * 3600)
    base = statistics.median(next(iter(samples.values())))
    rows = [
        f"| {name} | {statistics.median(ms):.2f} | {pct(ms, 0.99):.2f} | "
        f"{statistics.median(ms) / base:.2f}x | {pct(ms, 0.99) / base:.2f}x |"
        for name, ms in samples.items()
    ]
    return [
        f"Host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end "
        f"(shared machine); {runs} rounds, each running every case once in turn, after one "
        f"warm-up; cgroups: {jail.cgroups.kind}; workspaces: {workspaces.fs}.",
        "",
        "| what | p50 ms | p99 ms | p50 / bare | p99 / bare |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "| throughput, 8 conversations x 25 blocks at once | blocks/s |",
        "|---|---|",
        f"| 8 conversations at once, warm, in process | {rate:.0f} |",
        *service,
        "",
        *state,
    ]


async def wait_pinged(client: SandboxClient) -> None:
    """Wait until the service behind ``client`` answers ``/healthz``."""
    for _ in range(200):
        try:
            await client.ping()
            return
        except SandboxUnavailable:
            await asyncio.sleep(0.05)
    raise SystemExit(f"the sandbox service at {client.url} did not start")


async def kernels_report(runs: int) -> str:
    """The whole warm-kernel benchmark, as a markdown section."""
    from bench_sandbox import TOKEN, free_port, start_service, wait_healthy

    data = Path(tempfile.mkdtemp(prefix="opsloop-bench-"))
    data.chmod(0o755)
    (data / "service").mkdir(mode=0o755)
    port = free_port()
    config = "[sandbox]\nwarm_kernels = true\nmax_kernels = 32\n"
    service = start_service(
        data / "service", port, "--concurrency", "8", "--queue", "64", config=config
    )
    client = SandboxClient(url=f"http://127.0.0.1:{port}", token=TOKEN)
    # The same service on a 0600 unix socket (``--socket``), in a second process.
    (data / "unix").mkdir(mode=0o755)
    sock = data / "unix" / "sandbox.sock"
    unix_service = start_service(data / "unix", free_port(), "--socket", str(sock), config=config)
    unix = SandboxClient(url=f"unix://{sock}", token=TOKEN)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}")
        await wait_pinged(unix)
        lines = await measure(data, (client, unix), service.pid, runs)
    finally:
        for each, process in ((client, service), (unix, unix_service)):
            await each.aclose()
            process.terminate()
            process.wait(timeout=30)
        for name in ("service", "unix"):
            left = Workspaces(root=data / name / "workspaces", quota_bytes=QUOTA, idle_seconds=1)
            await asyncio.to_thread(left.prune, now=time.time() + 10 * 3600)
        shutil.rmtree(data, ignore_errors=True)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return "\n".join([f"## Warm kernels ({when})", "", *lines]) + "\n"
