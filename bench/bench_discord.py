"""Benchmark of the Discord surface: the bot's memory (RSS) while serving DMs.

The bot runs in its own process: ``opsloop serve discord``'s code (``bot.cli.discord._serve``:
real service, scripted model, SQLite, nsjail) with discord.py pointed at the local Discord
stand-in, which runs in this process and plays the users. The baseline, measured in the same
run against the same stand-in, is a bare ``discord.Client`` with the same intents that
connects and receives the same messages but does nothing: the ratio is what opsloop adds to
discord.py itself.

    .venv/bin/python bench/bench_discord.py [--channels 40] [--rounds 2] \
        [--out bench/results/discord.md]

Target (issue 6): bot RSS while serving < 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.discord_standin import DiscordStandIn, message_payload  # noqa: E402

SCRIPT = """\
turns:
  - |
    Let me look.
    <helpers>
    print(sum(range(1000)))
    </helpers>
  - The sum is 499500, as the sandbox printed.
  - |
    <helpers>
    print("x" * 5000)
    </helpers>
  - That was five thousand x's.
"""
ANSWERS = ("The sum is 499500", "That was five thousand")
TARGET_MB = 200.0


def child(mode: str, api: str, gateway: str) -> None:
    """The measured process: opsloop's Discord serve, or a bare discord.py client."""
    import discord
    import yarl
    from discord.gateway import DiscordWebSocket

    # Only this benchmark redirects discord.py; the product always talks to discord.com.
    discord.http.Route.BASE = api
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
    if mode == "opsloop":
        from bot.cli.discord import _serve

        asyncio.run(_serve(sharded=False, shard_count=None))
        return
    from adapters.discord.client import intents_for
    from bot.config import AccessPolicy

    client = discord.Client(intents=intents_for(AccessPolicy()), max_messages=None)
    asyncio.run(client.start("bench-token"))


class Sampler:
    """Samples a process's RSS in the background; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    def now(self) -> int:
        rss = self.process.memory_info().rss
        self.peak = max(self.peak, rss)
        return rss

    async def _run(self) -> None:
        while True:
            self.now()
            await asyncio.sleep(0.05)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def measure(
    mode: str, *, channels: int, rounds: int, env: dict[str, str]
) -> dict[str, float]:
    """Start the child in ``mode``, send ``channels x rounds`` DMs, return RSS figures in MB."""
    standin = DiscordStandIn()
    await standin.start()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", mode, standin.api_base, standin.gateway_url],
        env=env,
        cwd=env["OPSLOOP_DATA_DIR"],
    )
    sampler = Sampler(proc.pid)
    try:
        await standin.wait_until(lambda: standin.identifies == 1, timeout=120)
        await asyncio.sleep(1.0)  # let start-up allocations settle
        idle = sampler.now()
        sampler.peak = 0
        sampler.start()
        started = time.perf_counter()
        for round_no in range(rounds):
            for c in range(channels):
                await standin.dispatch(
                    "MESSAGE_CREATE",
                    message_payload(
                        channel_id=str(910000000000000000 + c),
                        author_id=str(920000000000000000 + c),
                        content=f"question {round_no} from user {c}",
                    ),
                )
            if mode == "opsloop":
                want = channels * (round_no + 1)
                await standin.wait_until(
                    lambda want=want: sum(t.startswith(ANSWERS) for t in standin.texts()) >= want,
                    timeout=600,
                )
            else:
                await asyncio.sleep(1.0)  # the bare client posts nothing; give it the events
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.5)
        await sampler.stop()
        after = sampler.now()
        return {
            "idle": idle / 2**20,
            "peak": sampler.peak / 2**20,
            "after": after / 2**20,
            "seconds": elapsed,
            "posts": len(standin.sent),
        }
    finally:
        await sampler.stop()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        await standin.close()


def environment(base: Path, sandbox: str) -> dict[str, str]:
    data = base / "data"
    data.mkdir()
    script = base / "script.yaml"
    script.write_text(SCRIPT, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "DISCORD_TOKEN": "bench-token",
            "OPSLOOP_DATA_DIR": str(data),
            "OPSLOOP_DATABASE_URL": f"sqlite:///{data / 'opsloop.sqlite3'}",
            "OPSLOOP_PROVIDER": "scripted",
            "OPSLOOP_MODEL": str(script),
            "OPSLOOP_SANDBOX": sandbox,
        }
    )
    return env


async def main(args: argparse.Namespace) -> str:
    from sandbox.check import diagnose

    sandbox = "nsjail" if (await diagnose()).jails_work else "unsafe-local"
    base = Path(tempfile.mkdtemp(prefix="opsloop-bench-discord-"))
    base.chmod(0o755)  # the jail user must reach the workspaces
    try:
        env = environment(base, sandbox)
        bare = await measure("bare", channels=args.channels, rounds=args.rounds, env=env)
        ours = await measure("opsloop", channels=args.channels, rounds=args.rounds, env=env)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    dms = args.channels * args.rounds
    ok = "✅" if ours["peak"] < TARGET_MB else "❌"
    lines = [
        "# Discord surface benchmark",
        "",
        f"{dms} DMs ({args.channels} DM channels x {args.rounds} rounds; each answer runs one "
        f"block, the second round's prints 5,000 characters so it is split over several "
        f"messages) to `opsloop serve discord` (scripted model, SQLite, {sandbox}), with "
        "discord.py pointed at the local REST + gateway stand-in. Baseline: a bare "
        "`discord.Client` with the same intents, same stand-in, same messages, same run. "
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}. Run: `.venv/bin/python bench/bench_discord.py "
        f"--channels {args.channels} --rounds {args.rounds}`.",
        "",
        "| measure | opsloop | bare discord.py | ratio | target |",
        "|---|---|---|---|---|",
        f"| RSS idle after READY | {ours['idle']:.0f} MB | {bare['idle']:.0f} MB | "
        f"{ours['idle'] / bare['idle']:.1f}x |  |",
        f"| RSS peak while serving | {ours['peak']:.0f} MB | {bare['peak']:.0f} MB | "
        f"{ours['peak'] / bare['peak']:.1f}x | < {TARGET_MB:.0f} MB {ok} |",
        f"| RSS after the last answer | {ours['after']:.0f} MB | {bare['after']:.0f} MB | "
        f"{ours['after'] / bare['after']:.1f}x |  |",
        f"| all {dms} answered | {ours['seconds']:.1f} s |  |  |  |",
        f"| messages posted | {ours['posts']:.0f} |  |  |  |",
        "",
        "RSS is the bot process alone (psutil, sampled every 50 ms); nsjail runs each block in",
        "a child process whose memory is capped by the sandbox limits, not counted here.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "discord.md")
    arguments = parser.parse_args()
    report = asyncio.run(main(arguments))
    print(report)
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(report, encoding="utf-8")
