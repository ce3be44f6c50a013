"""Benchmark of the sandbox: sandboxed print(1) against bare python3, in-process and over HTTP.

Everything is measured in the same run, so the ratios hold on a noisy shared machine:

    .venv/bin/python bench/bench_sandbox.py [--runs 40] [--out bench/results/sandbox.md]

Targets (issue 3): p50 overhead <= 2x bare python3 and <= 15 ms absolute; 8 concurrent
blocks >= 50 blocks/s; idle RSS of the service < 80 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.client import SandboxClient  # noqa: E402
from sandbox.jail import NsjailSandbox  # noqa: E402
from sandbox.limits import Limits  # noqa: E402
from sandbox.workspace import Workspaces  # noqa: E402

LIMITS = Limits(wall_seconds=10)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def children_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


async def timed(
    actions: dict[str, Callable[[], Awaitable[object]]], runs: int
) -> dict[str, tuple[list[float], float]]:
    """Wall ms of each run and CPU ms per run of our children, for each action.

    The actions take turns (one run of each per round), so a burst of load from the other
    users of the machine hits all of them alike and the ratios stay meaningful.
    """
    for action in actions.values():
        await action()  # warm caches
    samples: dict[str, list[float]] = {name: [] for name in actions}
    cpu: dict[str, float] = dict.fromkeys(actions, 0.0)
    for _ in range(runs):
        for name, action in actions.items():
            cpu_before = children_cpu_ms()
            start = time.perf_counter()
            await action()
            samples[name].append((time.perf_counter() - start) * 1000)
            cpu[name] += children_cpu_ms() - cpu_before
    return {name: (samples[name], cpu[name] / runs) for name in actions}


async def bare(argv: list[str], expect: bytes | None = b"1\n") -> None:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert expect is None or out == expect, out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_healthy(url: str) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit("the sandbox service did not start")


async def main(runs: int) -> str:
    data = Path(tempfile.mkdtemp(prefix="opsloop-bench-"))
    data.chmod(0o755)
    workspaces = Workspaces(root=data / "workspaces", quota_bytes=64 << 20, idle_seconds=3600)
    jail = NsjailSandbox.create(workspaces=workspaces)
    python = jail.layout.interpreter("python")

    async def sandboxed() -> None:
        result = await jail.run(language="python", code="print(1)", limits=LIMITS)
        assert result.stdout == "1\n", result

    rows = []
    port = free_port()
    env = {**os.environ, "OPSLOOP_DATA_DIR": str(data), "OPSLOOP_SANDBOX_TOKEN": "bench"}
    env.pop("OPSLOOP_SANDBOX_URL", None)
    service = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/opsloop"),
            "serve",
            "sandbox",
            "--port",
            str(port),
            "--concurrency",
            "8",
            "--queue",
            "64",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(url)
        await asyncio.sleep(0.5)
        idle_rss = psutil.Process(service.pid).memory_info().rss / 1e6
        client = SandboxClient(url=url, token="bench")

        async def remote() -> None:
            result = await client.run(language="python", code="print(1)", limits=LIMITS)
            assert result.stdout == "1\n", result

        measured = await timed(
            {
                f"bare `{python.path} -c 'print(1)'`": lambda: bare(
                    [python.path, "-c", "print(1)"]
                ),
                f"bare `{python.path} -I -S -c 'print(1)'`": lambda: bare(
                    [python.path, "-I", "-S", "-c", "print(1)"]
                ),
                "sandboxed print(1), in-process": sandboxed,
                "sandboxed print(1), HTTP service": remote,
                # The floor nsjail itself sets: loading the binary (it links libprotobuf and
                # libnl dynamically) before any namespace exists.
                "for scale: `nsjail --help` (the binary's own start-up)": lambda: bare(
                    [str(jail.nsjail), "--help"], expect=None
                ),
            },
            runs,
        )

        async def burst(run: Callable[[], Awaitable[None]], total: int = 64) -> float:
            slots = asyncio.Semaphore(8)

            async def one() -> None:
                async with slots:
                    await run()

            start = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(total)))
            return total / (time.perf_counter() - start)

        await burst(sandboxed, 8)
        rate_local = await burst(sandboxed)
        rate_remote = await burst(remote)
        busy_rss = psutil.Process(service.pid).memory_info().rss / 1e6
        rate_bare = await burst(lambda: bare([python.path, "-I", "-S", "-c", "print(1)"]))
        await client.aclose()
    finally:
        service.terminate()
        service.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)

    (base_name, (bare_plain, _)), (_, (bare_is, _)) = list(measured.items())[:2]
    base = statistics.median(bare_plain)
    base_is = statistics.median(bare_is)
    for name, (samples, cpu) in measured.items():
        p50, p99 = statistics.median(samples), pct(samples, 0.99)
        cpu_text = f"{cpu:.1f}" if cpu > 0.05 else "(other process)"
        rows.append(
            f"| {name} | {p50:.1f} | {p99:.1f} | {p50 / base:.2f}x | {p50 - base:+.1f} | "
            f"{p50 - base_is:+.1f} | {cpu_text} |"
        )
    lines = [
        f"# Sandbox benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"Host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end "
        f"(shared machine); {runs} rounds, each running every case once in turn, after one "
        f"warm-up; cgroups: "
        f"{jail.cgroups.kind}; jail python: `{python.path} {' '.join(python.args)}`.",
        "",
        "| what | p50 ms | p99 ms | p50 / bare | p50 - bare (ms) | p50 - bare -I -S (ms) "
        "| CPU ms/run |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "| throughput, 64 blocks at concurrency 8 | blocks/s |",
        "|---|---|",
        f"| bare python3 -I -S subprocesses | {rate_bare:.1f} |",
        f"| sandboxed, in-process | {rate_local:.1f} |",
        f"| sandboxed, HTTP service | {rate_remote:.1f} |",
        "",
        f"RSS of `opsloop serve sandbox`: {idle_rss:.1f} MB idle after start-up, "
        f"{busy_rss:.1f} MB after serving {runs + 65} blocks.",
        "",
        "Targets: p50 / bare <= 2x, p50 - bare <= 15 ms, >= 50 blocks/s at concurrency 8, "
        "service idle RSS < 80 MB.",
        "",
        "CPU ms/run is user+system time of our child processes (nsjail and everything in the "
        "jail) per run: it does not depend on how busy the shared machine is, wall times do.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    report = asyncio.run(main(args.runs))
    print(report)
    if args.out:
        args.out.write_text(report)
