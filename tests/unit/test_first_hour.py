"""The first hour's checks that need no subprocess: the demo's hints, the unconfigured
default model, OLLAMA_HOST, Slack token prefixes, resumed blocks of unknown outcome."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.slack.tokens import token_problem
from adapters.terminal.repl import unknown_outcomes
from bot.cli.firstrun import (
    check_default_model,
    no_model_configured,
    no_model_sentence,
    server_listens,
)
from bot.cli.hints import invocation, next_steps
from bot.errors import ConfigError
from bot.settings import Settings, ollama_host_ok


def fake_venv(root: Path, *, activate: bool = True) -> Path:
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "opsloop").write_text("#!/bin/sh\n")
    (bin_dir / "opsloop").chmod(0o755)
    if activate:
        (bin_dir / "activate").write_text("")
    return bin_dir


def test_the_hints_put_opsloop_on_path_first_when_the_shell_would_not_find_it(
    tmp_path: Path,
) -> None:
    bin_dir = fake_venv(tmp_path)
    first, word = invocation(bin_dir=bin_dir, cwd=tmp_path, path_env="/usr/bin:/bin")
    assert (first, word) == ("source .venv/bin/activate", "opsloop")


def test_the_hints_name_opsloop_alone_when_it_is_already_on_path(tmp_path: Path) -> None:
    bin_dir = fake_venv(tmp_path)
    assert invocation(bin_dir=bin_dir, cwd=tmp_path, path_env=str(bin_dir)) == (None, "opsloop")


def test_without_an_activate_script_the_hints_name_opsloop_by_its_path(tmp_path: Path) -> None:
    bin_dir = fake_venv(tmp_path / "elsewhere", activate=False)
    _, word = invocation(bin_dir=bin_dir, cwd=tmp_path / "elsewhere", path_env="/nonexistent")
    assert word == ".venv/bin/opsloop"
    _, word = invocation(bin_dir=bin_dir, cwd=tmp_path / "other", path_env="/nonexistent")
    assert word == str(bin_dir / "opsloop")


def test_the_demo_hints_name_the_conversation_and_the_built_in_chat(tmp_path: Path) -> None:
    bin_dir = fake_venv(tmp_path)
    lines = next_steps("1a2b3c4d", bin_dir=bin_dir, cwd=tmp_path, path_env="/nonexistent")
    commands = [line.split("#")[0].strip() for line in lines if line.startswith("  ")]
    assert commands == [
        "source .venv/bin/activate",
        "opsloop replay 1a2b3c4d",
        "opsloop audit verify 1a2b3c4d",
        "opsloop conversations",
        "opsloop chat --provider scripted --model demo",
    ]


def test_only_the_untouched_default_counts_as_no_model_configured() -> None:
    assert no_model_configured(Settings())
    assert not no_model_configured(Settings(), provider="ollama")
    assert not no_model_configured(Settings(), model="llama3.1")
    assert not no_model_configured(Settings(provider="openai"))
    assert not no_model_configured(Settings(ollama_host="http://gpu:11434"))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_model_configured_is_one_sentence_on_what_to_do() -> None:
    message = no_model_sentence("http://127.0.0.1:11434")
    assert "--provider scripted --model demo" in message and "opsloop demo" in message
    assert "\n" not in message and "127.0.0.1:11434" in message


def test_a_closed_port_has_no_server_and_a_listening_one_has() -> None:
    assert not server_listens(f"http://127.0.0.1:{closed_port()}")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert server_listens(f"127.0.0.1:{server.getsockname()[1]}")


def test_a_configured_model_is_never_probed() -> None:
    settings = Settings(ollama_host=f"http://127.0.0.1:{closed_port()}")
    assert not server_listens(settings.ollama_host)
    assert check_default_model(settings) is None  # no ConfigError: its own retries apply


@pytest.mark.parametrize(
    "host", ["http://127.0.0.1:11434", "https://ollama.example", "gpu:11434", "http://h/ollama"]
)
def test_ollama_hosts_the_client_understands_are_accepted(host: str) -> None:
    assert ollama_host_ok(host)


@pytest.mark.parametrize("host", ["notaurl", "", "ftp://x", "http://", "http://x:port", ":11434"])
def test_an_ollama_host_that_is_not_a_url_is_refused_at_start(host: str) -> None:
    assert not ollama_host_ok(host)
    with pytest.raises(ConfigError, match="OLLAMA_HOST"):
        from bot.settings import read_settings

        os.environ["OLLAMA_HOST"] = host
        try:
            read_settings()
        finally:
            del os.environ["OLLAMA_HOST"]


@given(st.text(max_size=30))
def test_checking_an_ollama_host_never_raises(text: str) -> None:
    assert ollama_host_ok(text) in (True, False)


def test_swapped_slack_tokens_are_named_as_swapped() -> None:
    problem = token_problem(bot_token="xapp-1-A", app_token="xoxb-1-B")
    assert problem is not None and "swapped" in problem


def test_an_app_token_as_the_bot_token_is_caught_in_http_mode_too() -> None:
    problem = token_problem(bot_token="xapp-1-A", app_token=None)
    assert problem is not None and "xoxb-" in problem


def test_right_slack_tokens_pass_and_a_wrong_app_token_is_named() -> None:
    assert token_problem(bot_token="xoxb-1", app_token="xapp-1") is None
    assert token_problem(bot_token="xoxb-1", app_token=None) is None
    assert "SLACK_APP_TOKEN" in (token_problem(bot_token="xoxb-1", app_token="xoxp-1") or "")
    assert "SLACK_BOT_TOKEN" in (token_problem(bot_token="xoxp-1", app_token=None) or "")


def test_the_chat_names_each_block_a_resume_found_of_unknown_outcome() -> None:
    events = [
        {"type": "BlockStarted", "block_id": "t1b1"},
        {"type": "BlockOutcomeUnknown", "block_id": "t1b1", "detail": "the process died"},
        {"type": "Answered", "text": "x"},
    ]
    assert unknown_outcomes(events) == [
        "block t1b1: outcome unknown, not run again: the process died"
    ]
    assert unknown_outcomes(events[:1]) == []


async def test_after_a_resume_the_chat_says_a_blocks_outcome_is_unknown(
    memory_app: object, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta
    from uuid import UUID

    from rich.console import Console

    from adapters.terminal.repl import ChatRepl, terminal_coordinates
    from bot.cli.bootstrap import build_service
    from bot.config import Policy
    from bot.surface import Incoming
    from tests.port_fakes import FakeSandbox, WatchedModel

    block = '<helpers lang="bash">\necho restart >> /workspace/runs.txt\n</helpers>'
    service = build_service(
        settings=Settings(database_url="memory:"),
        policy=Policy(),
        model=WatchedModel([block, "It may have restarted; check before running it again."]),
        sandbox=FakeSandbox(),
        app=memory_app,
    )
    coords = terminal_coordinates()
    receipt = await service.receive(Incoming(coords, "k1", coords.channel, "restart it"))
    cid = UUID(receipt.conversation_id)
    # What a process killed mid-block leaves: the reply and BlockStarted, nothing else.
    prompt = service.runner.build_prompt(service.app.timeline(cid))
    reply = await WatchedModel([block]).reply(prompt.messages)
    service.app.record_model_reply(cid, reply=reply, prompt_fingerprint=prompt.fingerprint)
    service.app.start_block(cid, block_id="t1b1", limits={})
    service.runner.now = lambda: datetime.now(UTC) + timedelta(minutes=5)  # past its wall time
    console = Console(record=True, width=200)
    repl = ChatRepl(
        service=service, console=console, history_file=tmp_path / "h", coordinates=coords
    )

    await repl.resume_interrupted()

    screen = console.export_text()
    assert "block t1b1: outcome unknown, not run again" in screen
    assert "check before running it again" in screen
