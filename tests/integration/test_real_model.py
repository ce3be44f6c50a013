"""``opsloop ask --json`` against a real model server: llama-cpp-python running Gemma 3 270M.

A 270M base-ish model misbehaves the way small local models do (issue 15): it writes broken
blocks, keeps writing, invents "Result of block" sections and repeats itself. These tests
assert what such a model can honestly meet: every turn within ``max_output_tokens`` (counted
by the server's own tokenizer), ``ask`` done within the caps, no invented result reaching the
model as a result, token counts marked as estimates (the server reports no usage while
streaming), and a replay and a verified chain that say what was cut and why.

The server comes from ``scripts/model-server`` (``.ci/run`` installs it); under ``CI=true`` a
missing server fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import Policy
from bot.prompt.builder import prompt_builder
from bot.prompt.untrusted import result_nonce
from domain.helpers import first_block_end
from tests.conftest import require_real
from tests.integration.llm_wire import free_port
from tests.integration.test_ask_token_usage import opsloop

pytestmark = [pytest.mark.real_model, pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
MAX_OUTPUT_TOKENS = 96
TURN_SECONDS = 45.0
TURNS = 3
RUNAWAY = "Use a python helper block to compute 2**100"
CONFIG = f"""
[loop]
turns_per_message = {TURNS}

[models]
max_output_tokens = {MAX_OUTPUT_TOKENS}
turn_seconds = {TURN_SECONDS}

[models."openai:gemma-3-270m"]
system_role = false  # Gemma's chat format has none: the server would drop the system prompt
"""


def _installed() -> bool:
    return any((ROOT / ".model-venv").glob(".installed-*"))


def _get(url: str, *, body: dict[str, object] | None = None) -> dict[str, object]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=30) as r:
        return dict(json.loads(r.read()))


@pytest.fixture(scope="module")
def model_server() -> Iterator[str]:
    """``scripts/model-server start`` on a free loopback port; its base URL (…/v1)."""
    require_real(
        _installed(), "the model server is not installed (run scripts/model-server install)"
    )
    port = free_port()
    log = (ROOT / ".cache" / "model-server" / "server.log").open("w")
    server = subprocess.Popen(
        [str(ROOT / "scripts" / "model-server"), "start", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                _get(f"{url}/models")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the model server did not start (see {log.name})", pytrace=False)
                time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def _tokens(url: str, text: str) -> int:
    """The server's own count of ``text``'s tokens (its tokenizer, no special tokens added)."""
    base = url.removesuffix("/v1")
    answer = _get(f"{base}/extras/tokenize/count", body={"input": text})
    return int(str(answer["count"]))


async def test_the_runaway_prompt_ends_within_the_caps_and_the_replay_says_what_was_cut(
    model_server: str, jail_reachable_dir: Path
) -> None:
    home = jail_reachable_dir
    (home / "opsloop.toml").write_text(CONFIG)
    env = {
        "OPSLOOP_PROVIDER": "openai",
        "OPSLOOP_MODEL": "gemma-3-270m",
        "OPENAI_BASE_URL": model_server,
    }
    started = time.monotonic()
    status, out, err = await opsloop(home, "ask", RUNAWAY, "--json", **env)
    took = time.monotonic() - started
    assert "Traceback" not in err
    result = json.loads(out)
    # An answer (0), or a recorded stop (1): a 270M model may well use up its turns.
    assert (status, result["stopped_reason"]) in {(0, None), (1, "turn_limit"), (1, "truncated")}, (
        out,
        err,
    )
    # Every turn is capped; the blocks in between run under the sandbox's own 10 s limit.
    assert took < TURNS * (TURN_SECONDS + 15) + 30
    assert result["tokens_estimated"] is True  # llama-cpp-python streams no usage

    replay_status, replay_json, _ = await opsloop(
        home, "replay", result["conversation_id"], "--format", "json", **env
    )
    assert replay_status == 0
    timeline = [json.loads(line) for line in replay_json.splitlines() if line.strip()]
    turns = [e for e in timeline if e["type"] == "ModelReplied"]
    assert 1 <= len(turns) <= TURNS
    for turn in turns:
        # Within the output limit by the server's own tokenizer (+ the closing tag given back).
        assert _tokens(model_server, turn["text"]) <= MAX_OUTPUT_TOKENS + 8, turn
        assert turn["truncated"] in (None, "tokens", "time", "repetition")
        assert turn["latency_ms"] <= (TURN_SECONDS + 5) * 1000
        end = first_block_end(turn["text"])
        assert end is None or not turn["text"][end:].strip()  # nothing kept after a block
    _assert_no_invented_results(timeline)

    text_status, replay_text, _ = await opsloop(home, "replay", result["conversation_id"], **env)
    verify_status, verified, verify_err = await opsloop(
        home, "audit", "verify", result["conversation_id"], **env
    )
    assert text_status == 0 and verify_status == 0, verify_err
    for turn in turns:
        if turn["truncated"]:
            assert f"model turn {turn['turn']}: " in replay_text and "cut by" in replay_text
    assert "Traceback" not in verified


def _assert_no_invented_results(timeline: list[dict[str, object]]) -> None:
    """Rebuild the prompt the next turn would get: every result title in it is opsloop's
    (with the conversation's nonce), one per block outcome, and nothing the model wrote
    passes for one."""
    build = prompt_builder(policy=Policy(), model_name="openai:gemma-3-270m")
    prompt = build(list(timeline))  # type: ignore[arg-type]
    nonce = result_nonce(timeline[0])
    titles = [
        line
        for m in prompt.messages
        for line in m.content.splitlines()
        if re.match(r"\s*Result of block", line)
    ]
    outcomes = [e for e in timeline if str(e["type"]) in _OUTCOMES]
    assert nonce and all(f"[{nonce}]" in t for t in titles)
    assert len(titles) == len(outcomes)
    for m in prompt.messages:
        if m.role == "assistant":
            assert not re.search(r"^\s*Result of block", m.content, re.M)


_OUTCOMES = {"BlockFinished", "BlockSkipped", "BlockRefused", "BlockOutcomeUnknown"}


async def test_doctor_finds_that_the_real_server_honours_max_tokens_and_stop_sequences(
    model_server: str, jail_reachable_dir: Path
) -> None:
    env = {"OPSLOOP_PROVIDER": "openai", "OPSLOOP_MODEL": "gemma-3-270m"}
    _, out, err = await opsloop(jail_reachable_dir, "doctor", OPENAI_BASE_URL=model_server, **env)
    assert "Traceback" not in err
    assert "ok   model: openai:gemma-3-270m answered the heartbeat" in out
    # llama-cpp-python's /v1/models says nothing of the window: the configured one is named.
    assert (
        "model bounds: context window not reported by the server; opsloop assumes 8192; "
        "honours max_tokens: yes; honours stop sequences: yes"
    ) in out


def test_the_prompt_the_model_sees_holds_the_system_prompt_only_once_it_is_folded() -> None:
    """The server renders messages with llama-cpp-python's Gemma formatter (it can not return
    the rendered prompt, so the same formatter is called in the server's own venv): a system
    message is dropped, and the folded form keeps every word opsloop sends."""
    require_real(
        _installed(), "the model server is not installed (run scripts/model-server install)"
    )
    from bot.ports import ChatMessage
    from bot.providers.turns import wire_messages

    system = "You are opsloop. SYSTEM-MARKER-7 Write helper blocks."
    messages = [ChatMessage("system", system), ChatMessage("user", "compute 2**100")]
    render = (
        "import json, sys\n"
        "from llama_cpp.llama_chat_format import format_gemma\n"
        "print(format_gemma(json.load(sys.stdin)).prompt)\n"
    )

    def seen(payload: list[dict[str, str]]) -> str:
        done = subprocess.run(
            [str(ROOT / ".model-venv" / "bin" / "python"), "-c", render],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout

    assert "SYSTEM-MARKER-7" not in seen(wire_messages(messages, system_role=True))
    folded = seen(wire_messages(messages, system_role=False))
    assert f"<start_of_turn>user\n{system}\n\ncompute 2**100<end_of_turn>" in folded
