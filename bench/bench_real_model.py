"""Benchmark against the real model server (llama-cpp-python, Gemma 3 270M; issue 15).

    scripts/model-server install
    .venv/bin/python bench/bench_real_model.py [--output bench/results/real_model.md]

Starts ``scripts/model-server`` on a free loopback port and prints a markdown table:

1. time to the first token and streamed chunks per second (llama-cpp-python streams one token
   per chunk and reports no usage while streaming), through opsloop's provider
   (``OpenAICompatModel.reply``, with its guard, stop sequence and token cap) against direct
   ``openai`` client calls with the same parameters (messages, ``max_tokens``, ``stop``),
   alternating rounds so both see the same machine load -- target: opsloop/direct < 1.1;
2. the wall time of the issue's runaway prompt: before (one uncapped completion of the prompt
   opsloop sends, as every turn was before this issue: no ``max_tokens``, no stop, cut only by
   this benchmark at ``BEFORE_CAP_SECONDS``) and after (a whole ``opsloop ask`` with the
   caps of ``CONFIG``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402

from bot.ports import ChatMessage  # noqa: E402
from bot.providers.pricing import PriceTable  # noqa: E402
from bot.providers.retry import RetryPolicy  # noqa: E402
from bot.providers.turns import TurnCaps, openai_limits, wire_messages  # noqa: E402

MODEL = "gemma-3-270m"
ROUNDS = 5
CAPS = TurnCaps(max_output_tokens=64, system_role=False)
RUNAWAY = "Use a python helper block to compute 2**100"
BEFORE_CAP_SECONDS = 240.0
CONFIG = """[loop]
turns_per_message = 4

[models]
max_output_tokens = 256
turn_seconds = 60

[models."openai:gemma-3-270m"]
system_role = false
"""
PROMPT = [
    ChatMessage("system", "You are a helpful assistant. Answer in prose."),
    ChatMessage("user", "Tell me a long story about a lighthouse keeper and a cat."),
]


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [str(ROOT / "scripts" / "model-server"), "start", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/models", timeout=5).read()
            return server, url
        except OSError:
            time.sleep(1)
    raise SystemExit("the model server did not start (scripts/model-server install first)")


async def paired(url: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Alternating rounds: (seconds to the first text, chunks per second after it) through
    opsloop's provider, and with the ``openai`` client alone with the same parameters. Both
    clients are made (and warmed) before the clock starts."""
    from bot.providers.openai_compat import OpenAICompatModel

    model = OpenAICompatModel(
        provider="openai",
        model=MODEL,
        api_key="no-key",
        base_url=url,
        retry=RetryPolicy(attempts=1),
        prices=PriceTable(),
        caps=CAPS,
    )
    client = openai.AsyncOpenAI(api_key="no-key", base_url=url, max_retries=0)
    await model.reply(PROMPT)  # warm both clients and the server's prompt cache
    ours, theirs = [], []
    for _ in range(ROUNDS):
        times: list[float] = []

        async def sink(_chunk: str, times: list[float] = times) -> None:
            times.append(time.perf_counter())

        started = time.perf_counter()
        await model.reply(PROMPT, on_text=sink)
        ours.append(_rates(started, times))
        theirs.append(await direct(client))
    await model.aclose()
    await client.close()
    return ours, theirs


async def direct(client: openai.AsyncOpenAI) -> tuple[float, float]:
    """One streamed completion with the ``openai`` client alone, same parameters as opsloop."""
    times: list[float] = []
    started = time.perf_counter()
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=wire_messages(PROMPT, system_role=False),  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
        **openai_limits(CAPS),
    )
    async for chunk in stream:
        if any(c.delta and c.delta.content for c in chunk.choices):
            times.append(time.perf_counter())
    return _rates(started, times)


def _rates(started: float, times: list[float]) -> tuple[float, float]:
    if len(times) < 2:
        return (times[0] - started if times else float("nan")), float("nan")
    return times[0] - started, (len(times) - 1) / (times[-1] - times[0])


async def runaway_before(url: str) -> tuple[float, int, bool]:
    """One uncapped completion of the runaway prompt: (seconds, chunks, hit our cap)."""
    from bot.config import Policy
    from bot.prompt.builder import prompt_builder

    timeline = [
        {"type": "Started", "conversation_id": "bench", "timestamp": "2026-01-01T00:00:00"},
        {"type": "MessageReceived", "author": "bench", "text": RUNAWAY, "message_key": "k"},
    ]
    prompt = prompt_builder(policy=Policy(), model_name=f"openai:{MODEL}")(timeline)
    client = openai.AsyncOpenAI(api_key="no-key", base_url=url, max_retries=0, timeout=600)
    chunks, started = 0, time.perf_counter()

    async def read() -> None:
        nonlocal chunks
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=wire_messages(prompt.messages, system_role=False),  # type: ignore[arg-type]
            stream=True,
        )
        async for _ in stream:
            chunks += 1

    try:
        await asyncio.wait_for(read(), BEFORE_CAP_SECONDS)
        capped = False
    except TimeoutError:
        capped = True
    await client.close()
    return time.perf_counter() - started, chunks, capped


def runaway_after(url: str) -> tuple[float, str]:
    """A whole ``opsloop ask --json`` of the runaway prompt with the caps of ``CONFIG``."""
    from tests.conftest import remove_test_dir  # unmounts the workspace images, then deletes

    home = tempfile.mkdtemp(prefix="opsloop-bench-")
    try:
        os.chmod(home, 0o755)  # the jail user must reach the workspaces under it
        Path(home, "opsloop.toml").write_text(CONFIG)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSLOOP_", "OPENAI_"))}
        env |= {"OPSLOOP_DATA_DIR": home, "OPSLOOP_PROVIDER": "openai", "OPSLOOP_MODEL": MODEL}
        env |= {"OPENAI_BASE_URL": url}
        command = [str(Path(sys.executable).with_name("opsloop")), "ask", RUNAWAY, "--json"]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=home, env=env, capture_output=True, text=True)
        return time.perf_counter() - started, (done.stdout or done.stderr).strip()[:300]
    finally:
        remove_test_dir(Path(home))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    server, url = start_server()
    try:
        ours, theirs = asyncio.run(paired(url))
        before = asyncio.run(runaway_before(url))
        after = runaway_after(url)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    ttft = statistics.median(t for t, _ in ours), statistics.median(t for t, _ in theirs)
    rate = statistics.median(r for _, r in ours), statistics.median(r for _, r in theirs)
    lines = [
        f"# Real model server (llama-cpp-python, {MODEL}), {platform.node()}, "
        f"{os.cpu_count()} CPUs, median of {ROUNDS} alternating rounds",
        "",
        "| measure | opsloop | direct openai client | ratio | target | met |",
        "|---|---|---|---|---|---|",
        f"| time to first token | {ttft[0]:.3f} s | {ttft[1]:.3f} s | {ttft[0] / ttft[1]:.2f}x "
        f"| < 1.1 | {'yes' if ttft[0] / ttft[1] < 1.1 else '**no**'} |",
        f"| chunks (tokens) per second | {rate[0]:.1f} | {rate[1]:.1f} | "
        f"{rate[1] / rate[0]:.2f}x | < 1.1 | {'yes' if rate[1] / rate[0] < 1.1 else '**no**'} |",
        "",
        "| runaway prompt | wall time | notes |",
        "|---|---|---|",
        f"| before (one uncapped turn) | {before[0]:.1f} s | {before[1]} chunks"
        + (f"; stopped by this bench at {BEFORE_CAP_SECONDS:g} s" if before[2] else "")
        + " |",
        f"| after (`opsloop ask`, caps as in the bench's CONFIG) | {after[0]:.1f} s | "
        f"`{after[1].replace('|', '/')}` |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
