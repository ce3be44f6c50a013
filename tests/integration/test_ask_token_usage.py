"""``opsloop ask --json`` against real HTTP servers speaking the Ollama and OpenAI wire formats.

The servers report token usage, so the answer's JSON and the replay must carry the provider's
own counts (not estimates) for every model turn, with the block in between run in nsjail.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import require_real
from tests.integration.llm_wire import COMPLETION_TOKENS, PROMPT_TOKENS, Step, WireServer

PLAN = [Step(text="Let me add.\n<helpers>\nprint(2 + 2)\n</helpers>"), Step(text="It is 4.")]


@pytest.fixture
def home(jail_reachable_dir: Path) -> Path:
    return jail_reachable_dir


async def opsloop(home: Path, *args: str, **env: str) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPSLOOP_", "OPENAI_"))}
    base.update(OPSLOOP_DATA_DIR=str(home), COLUMNS="200")
    base.update(env)
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("opsloop")),
        *args,
        cwd=home,
        env=base,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode(), err.decode()


@pytest.mark.parametrize("provider", ["ollama", "openai"])
async def test_ask_json_records_the_servers_own_token_counts_for_every_turn(
    home: Path, provider: str
) -> None:
    from sandbox.check import diagnose

    require_real((await diagnose()).jails_work, "nsjail cannot run blocks on this host")
    server = WireServer(list(PLAN))
    url = await server.start()
    try:
        env = {"OPSLOOP_PROVIDER": provider, "OPSLOOP_MODEL": "wire-model"}
        env |= {"OLLAMA_HOST": url} if provider == "ollama" else {"OPENAI_BASE_URL": f"{url}/v1"}
        status, out, err = await opsloop(home, "ask", "what is 2 + 2?", "--json", **env)
        assert status == 0, err
        result = json.loads(out)
        replay_status, replay, _ = await opsloop(home, "replay", result["conversation_id"], **env)
    finally:
        await server.close()

    assert result["answer"] == "It is 4." and result["blocks"] == 1
    assert result["input_tokens"] == 2 * PROMPT_TOKENS
    assert result["output_tokens"] == 2 * COMPLETION_TOKENS
    assert len(server.seen) == 2
    assert "exit status 0" in server.seen[1].body["messages"][-1]["content"]  # the result went back
    assert replay_status == 0
    assert replay.count(f"{PROMPT_TOKENS} in / {COMPLETION_TOKENS} out tokens") == 2
    assert "estimated" not in replay
    assert "block t1b1 finished: exit 0" in replay and "4" in replay
