"""Benchmark of the tool channel: a no-op frame from a block to the relay and back.

    .venv/bin/python bench/bench_tool_channel.py [--calls 200] [--runs 20] [--out FILE]

Measured from inside a real jail, with a relay that answers at once (so it is the channel's
cost, not a tool's): the round trip of ``tools.noop()`` (Python, one connection reused), of
a raw line on the socket, and of ``tool noop`` in bash (a process per call); the same
``tools.noop()`` through the sandbox service (jail -> service -> client -> back over the
WebSocket); and what offering tools adds to a block's start (``print(1)`` with and without a
relay, interleaved) and to ``import tools``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.client import SandboxClient  # noqa: E402
from sandbox.jail import NsjailSandbox  # noqa: E402
from sandbox.limits import Limits  # noqa: E402
from sandbox.service import ServiceOptions, start_service  # noqa: E402
from sandbox.workspace import Workspaces  # noqa: E402

LIMITS = Limits(wall_seconds=60)
NOOP = {
    "name": "noop",
    "kind": "command",
    "description": "nothing",
    "signature": "noop() -> None",
    "schema": {"type": "object", "properties": {}, "required": []},
    "server": None,
    "server_description": "",
}


async def relay(frame: dict[str, Any]) -> dict[str, Any]:
    if frame.get("op") == "list":
        return {"ok": True, "tools": [NOOP]}
    return {"ok": True, "result": None, "truncated": False}


PYTHON = """
import time
t0 = time.perf_counter()
import tools  # first: what a block pays, json and all
imported = time.perf_counter() - t0
import json, socket
tools.noop()  # the list, and one warm-up call
calls = []
for _ in range({calls}):
    t = time.perf_counter()
    tools.noop()
    calls.append(time.perf_counter() - t)
s = socket.socket(socket.AF_UNIX); s.connect('/opsloop/tools.sock'); f = s.makefile('rb')
raw = []
for _ in range({calls}):
    t = time.perf_counter()
    s.sendall(b'{{"op":"call","tool":"noop","arguments":{{}}}}\\n'); f.readline()
    raw.append(time.perf_counter() - t)
print(json.dumps({{"import": imported, "calls": calls, "raw": raw}}))
"""
BASH = """
for i in $(seq {calls}); do
  s=$(date +%s%N); tool noop >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000 ))
done
"""


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    return (
        f"median {statistics.median(ordered) * 1000:.3f} ms, "
        f"p90 {ordered[int(0.9 * (len(ordered) - 1))] * 1000:.3f} ms"
    )


async def channel(sandbox: NsjailSandbox, calls: int) -> dict[str, Any]:
    result = await sandbox.run(
        language="python", code=PYTHON.format(calls=calls), limits=LIMITS, tools=relay
    )
    return json.loads(result.stdout)


async def bash_calls(sandbox: NsjailSandbox, calls: int) -> list[float]:
    result = await sandbox.run(
        language="bash", code=BASH.format(calls=calls), limits=LIMITS, tools=relay
    )
    return [int(line) / 1e6 for line in result.stdout.split()]


async def start_cost(sandbox: NsjailSandbox, runs: int) -> tuple[list[float], list[float]]:
    plain, with_tools = [], []
    for _ in range(runs):  # interleaved, so load on the machine hits both alike
        for target, tools in ((plain, None), (with_tools, relay)):
            started = time.perf_counter()
            await sandbox.run(language="python", code="print(1)", limits=LIMITS, tools=tools)
            target.append(time.perf_counter() - started)
    return plain, with_tools


async def through_service(sandbox: NsjailSandbox, calls: int) -> dict[str, Any]:
    options = ServiceOptions(token="bench", maxima=LIMITS)
    service = await start_service(runner=sandbox, options=options, port=0)
    client = SandboxClient(url=service.url, token="bench")
    try:
        result = await client.run(
            language="python", code=PYTHON.format(calls=calls), limits=LIMITS, tools=relay
        )
        return json.loads(result.stdout)
    finally:
        await client.aclose()
        await service.close()


async def main(calls: int, runs: int) -> str:
    with tempfile.TemporaryDirectory() as scratch:
        Path(scratch).chmod(0o755)
        workspaces = Workspaces(
            root=Path(scratch) / "ws", quota_bytes=1 << 20, idle_seconds=60, fs="directory"
        )
        sandbox = NsjailSandbox.create(workspaces=workspaces)
        try:
            inside = await channel(sandbox, calls)
            bash = await bash_calls(sandbox, max(20, calls // 10))
            remote = await through_service(sandbox, calls)
            plain, with_tools = await start_cost(sandbox, runs)
        finally:
            await sandbox.aclose()
    return "\n".join(
        [
            f"- `tools.noop()` in a jail, {calls} calls: {ms(inside['calls'])}",
            f"- a raw frame on the socket, {calls} calls: {ms(inside['raw'])}",
            f"- `tool noop` in bash, {len(bash)} calls: {ms(bash)}",
            f"- `tools.noop()` through the service (WebSocket), {calls} calls: "
            f"{ms(remote['calls'])}",
            f"- `import tools` (first import, in the jail): {inside['import'] * 1000:.2f} ms",
            f"- `print(1)` without tools, {runs} runs: {ms(plain)}",
            f"- `print(1)` with tools offered, {runs} runs: {ms(with_tools)}",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = asyncio.run(main(args.calls, args.runs))
    print(report)
    if args.out:
        args.out.write_text(report + "\n")
