"""``opsloop ask --json`` against loopback Ollama and OpenAI servers that misbehave (issue 15).

The servers ignore ``max_tokens`` and stop sequences, stream forever, invent the results of
their own blocks and repeat themselves, as small local models do. Whatever they stream, every
turn ends within its caps, nothing the model invented reaches it as a result, and the replay
says what was cut and why.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_real
from tests.integration.llm_wire import Step, WireServer
from tests.integration.test_ask_token_usage import opsloop

PROVIDERS = ["ollama", "openai"]
CONFIG = """
[loop]
turns_per_message = 4

[models]
max_output_tokens = 64
turn_seconds = 2
attempts = 1
"""
INVENTED = (
    "Result of block t1b1 (python): exit status 0 (success).\n"
    "--- stdout (data 0123) ---\n42\n--- end of stdout (data 0123) ---\n"
)
RAMBLE = "[INST] <<SYS>> You are a helpful assistant and the answer follows below. [/INST]\n"


@pytest.fixture
def home(jail_reachable_dir: Path) -> Path:
    (jail_reachable_dir / "opsloop.toml").write_text(CONFIG)
    return jail_reachable_dir


async def ask(
    home: Path, provider: str, plan: list[Step], *, status: int = 0
) -> tuple[dict[str, Any], WireServer, str]:
    """Run ``ask --json`` against a server playing ``plan``; the result, the server, and the
    text replay (read before the server closes)."""
    server = WireServer(plan)
    url = await server.start()
    env = {"OPSLOOP_PROVIDER": provider, "OPSLOOP_MODEL": "wire-model"}
    env |= {"OLLAMA_HOST": url} if provider == "ollama" else {"OPENAI_BASE_URL": f"{url}/v1"}
    try:
        code, out, err = await opsloop(home, "ask", "compute 2**100", "--json", **env)
        assert code == status and "Traceback" not in err, err
        result = json.loads(out)
        replay_status, replay, _ = await opsloop(home, "replay", result["conversation_id"], **env)
        verify_status, _, verify_err = await opsloop(
            home, "audit", "verify", result["conversation_id"], **env
        )
        assert replay_status == 0 and verify_status == 0, verify_err
    finally:
        await server.close()
    return result, server, replay


def limits_sent(provider: str, body: dict[str, Any]) -> tuple[Any, Any]:
    if provider == "ollama":
        options = body.get("options") or {}
        return options.get("num_predict"), options.get("stop")
    return body.get("max_tokens"), body.get("stop")


async def require_jail() -> None:
    from sandbox.check import diagnose

    require_real((await diagnose()).jails_work, "nsjail cannot run blocks on this host")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_model_that_streams_forever_is_cut_at_turn_seconds_and_the_loop_stops(
    home: Path, provider: str
) -> None:
    plan = [Step(text=RAMBLE, forever=True, pause=0.01) for _ in range(2)]
    started = time.monotonic()
    result, server, replay = await ask(home, provider, plan, status=1)  # stopped: no answer
    took = time.monotonic() - started
    assert took < 20  # two turns of 2 s, not minutes
    assert result["stopped_reason"] == "truncated" and result["answer"] is None
    assert result["truncated_turns"] == 2 and result["tokens_estimated"] is True
    assert len(server.seen) == 2  # the cut, then one short "be brief" turn: no more
    assert "Be brief" in server.seen[1].body["messages"][-1]["content"]
    assert replay.count("cut by the turn's time limit ([models] turn_seconds)") == 2
    assert "stopped" in replay and "2 times in a row" in replay


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_invented_results_after_a_block_are_discarded_and_the_real_one_goes_back(
    home: Path, provider: str
) -> None:
    await require_jail()
    block = "Let me compute.\n<helpers>\nprint(2**100)\n</helpers>\n"
    plan = [Step(text=block + INVENTED * 5), Step(text="It is 1267650600228229401496703205376.")]
    result, server, replay = await ask(home, provider, plan)
    assert result["answer"] == "It is 1267650600228229401496703205376."
    # Only what arrived before the stream was closed is counted: the rest was never read.
    assert result["blocks"] == 1 and result["discarded_chars"] > 0
    for seen in server.seen:
        assert limits_sent(provider, seen.body) == (64, ["</helpers>"])
    messages = server.seen[1].body["messages"]
    mine = [m["content"] for m in messages if m["role"] == "assistant"]
    assert mine == [block.rstrip("\n")]  # nothing it wrote after its block came back
    result_text = messages[-1]["content"]
    assert "1267650600228229401496703205376" in result_text and "\n42\n" not in result_text
    assert "characters after its block discarded" in replay


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_repeating_model_is_cut_as_repetition_and_told_to_be_brief(
    home: Path, provider: str
) -> None:
    plan = [Step(text=RAMBLE * 60), Step(text="Sorry. 2**100 is 1267650600228229401496703205376.")]
    result, server, replay = await ask(home, provider, plan)
    assert result["answer"] == "Sorry. 2**100 is 1267650600228229401496703205376."
    assert result["truncated_turns"] == 1
    prompt = server.seen[1].body["messages"]
    assert len(prompt[-2]["content"]) < len(RAMBLE) * 6  # what came back is the cut reply
    assert "Your reply was cut (it kept repeating itself)" in prompt[-1]["content"]
    assert "cut by the repetition detector" in replay


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_block_ended_by_the_stop_sequence_gets_its_tag_back_and_runs(
    home: Path, provider: str
) -> None:
    await require_jail()
    plan = [Step(text="Computing.\n<helpers>\nprint(6 * 7)\n"), Step(text="It is 42.")]
    result, server, _ = await ask(home, provider, plan)
    assert result["answer"] == "It is 42." and result["blocks"] == 1
    assert "exit status 0" in server.seen[1].body["messages"][-1]["content"]
    assert result["truncated_turns"] == 0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_reply_stopped_at_max_tokens_is_recorded_as_cut_by_tokens(
    home: Path, provider: str
) -> None:
    plan = [Step(text="Well, to compute this we", finish="length"), Step(text="It is 2**100.")]
    result, server, replay = await ask(home, provider, plan)
    assert result["answer"] == "It is 2**100." and result["truncated_turns"] == 1
    assert (
        "Your reply was cut (it reached the output token limit)"
        in (server.seen[1].body["messages"][-1]["content"])
    )
    assert "cut by the output token limit ([models] max_output_tokens)" in replay
