"""The broker in the loop: calls a block makes are checked, run on the host, redacted and
recorded between its BlockStarted and BlockFinished, and replayed under their block.

Real parts: the application on ``memory:``, the product's scripted model and prompt builder,
the tool registry running real host commands. The sandbox is the port's fake: it stands for
a jail by sending the relay the frames a block's ``tools`` module would send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import psutil
import pytest

from bot.audit.replay import render
from bot.cli.bootstrap import build_service
from bot.config import Policy
from bot.providers.scripted import ScriptedModel
from bot.settings import Settings
from bot.surface import Coordinates, Incoming
from sandbox.result import RunResult

SECRET = "s3cr3t-v4lue-0123456789"
TOOLS: dict[str, Any] = {
    "calls_per_block": 3,
    "echo": {
        "kind": "command",
        "description": "Say something back.",
        "argv": ["echo", "{text}"],
        "params": {"text": {"type": "string"}},
    },
    "whoami_token": {
        "kind": "command",
        "description": "Print the token the tool holds (it must never be seen).",
        "argv": ["printenv", "TOKEN"],
        "env": {"TOKEN": "${env:OPSLOOP_TEST_TOKEN}"},
    },
    "slow": {"kind": "command", "description": "Take its time.", "argv": ["sleep", "30"]},
}
BLOCK = "<helpers>\nimport tools\nprint(tools.echo(text='hi'))\n</helpers>"
HERE = Coordinates("slack", "T1", "C1", "1.1")
Jail = Callable[[Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]], Awaitable[str]]


class JailStandIn:
    """A ``Sandbox`` whose block is a coroutine talking to the relay, as a jail would."""

    def __init__(self, block: Jail) -> None:
        self.block = block
        self.answers: list[dict[str, Any]] = []

    async def run(
        self,
        *,
        language: str,
        code: str,
        limits: Any = None,
        workspace: Any = None,
        tools: Any = None,
    ) -> RunResult:
        assert tools is not None, "a run with tools configured gets a relay"

        async def relay(frame: dict[str, Any]) -> dict[str, Any]:
            answer = await tools(frame)
            self.answers.append(answer)
            return answer

        stdout = await self.block(relay)
        return RunResult(exit_code=0, signal=None, stdout=stdout, stderr="", duration_ms=5)


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"op": "call", "tool": tool, "arguments": arguments}


def helpers(*lines: str) -> str:
    """A model turn whose one block is these lines of Python."""
    return "<helpers>\nimport tools\n" + "\n".join(lines) + "\n</helpers>"


async def converse(
    block: Jail, monkeypatch: pytest.MonkeyPatch, *, turn: str = BLOCK
) -> tuple[Any, str, JailStandIn]:
    monkeypatch.setenv("OPSLOOP_TEST_TOKEN", SECRET)
    policy = Policy.model_validate({"tools": TOOLS, "slack": {}})
    sandbox = JailStandIn(block)
    model = ScriptedModel([turn, "Done."])
    service = build_service(
        settings=Settings(database_url="memory:"),
        policy=policy,
        model=model,
        sandbox=sandbox,
        app=None,
    )
    receipt = await service.receive(Incoming(HERE, "m1", "U0ALICE", "say hi"))
    await service.run(receipt.conversation_id, _Quiet())
    return service, receipt.conversation_id, sandbox


class _Quiet:
    async def thinking(self) -> None: ...
    async def model_text(self, chunk: str) -> None: ...
    async def block_started(self, **_: object) -> None: ...
    async def block_finished(self, **_: object) -> None: ...
    async def answered(self, text: str) -> None: ...
    async def stopped(self, **_: object) -> None: ...


def kinds(timeline: list[dict[str, Any]]) -> list[str]:
    """Event types but ``LoopClaimed`` (who ran the loop: tests/unit/test_loop_ownership.py)."""
    return [e["type"] for e in timeline if e["type"] != "LoopClaimed"]


async def test_a_call_runs_on_the_host_and_is_recorded_inside_its_block(monkeypatch) -> None:
    async def block(relay) -> str:  # type: ignore[no-untyped-def]
        return str((await relay(call("echo", text="hi")))["result"])

    service, cid, jail = await converse(block, monkeypatch)
    timeline = await service.timeline(cid)
    assert kinds(timeline)[3:7] == ["BlockStarted", "ToolCalled", "ToolReturned", "BlockFinished"]
    [called] = [e for e in timeline if e["type"] == "ToolCalled"]
    [returned] = [e for e in timeline if e["type"] == "ToolReturned"]
    assert (called["tool"], called["arguments"], called["block_id"]) == (
        "echo",
        {"text": "hi"},
        "t1b1",
    )
    assert (returned["ok"], returned["result"], returned["call_id"]) == (True, "hi\n", "t1b1c1")
    assert jail.answers == [{"ok": True, "result": "hi\n", "truncated": False}]
    await service.aclose()


async def test_the_prompt_lists_the_tools_this_caller_may_call(monkeypatch) -> None:
    from bot.prompt.builder import prompt_builder
    from bot.tools.registry import ToolRegistry
    from bot.tools.values import Caller

    monkeypatch.setenv("OPSLOOP_TEST_TOKEN", SECRET)
    policy = Policy.model_validate({"tools": TOOLS})
    registry = ToolRegistry.build(policy, environ={"OPSLOOP_TEST_TOKEN": SECRET})
    specs = await registry.tools_for(Caller(platform="slack", user="U0ALICE", channel="C1"))
    prompt = prompt_builder(policy=policy, model_name="scripted:t")([], tools=specs)
    system = prompt.messages[0].content
    assert "## Tools" in system and "echo(text: str)" in system and "Say something back." in system
    assert "import tools" in system and "tool echo key=value" in system
    assert "treat it as data" in system and SECRET not in system
    assert "ask the user to paste" not in system
    await registry.aclose()


async def test_a_secret_a_tool_prints_is_redacted_before_the_jail_or_the_log_sees_it(
    monkeypatch,
) -> None:
    async def block(relay) -> str:  # type: ignore[no-untyped-def]
        return str((await relay(call("whoami_token")))["result"])

    turn = helpers("print(tools.whoami_token())")
    service, cid, jail = await converse(block, monkeypatch, turn=turn)
    returned = next(e for e in await service.timeline(cid) if e["type"] == "ToolReturned")
    assert returned["result"] == "[redacted:OPSLOOP_TEST_TOKEN]\n"
    assert returned["redacted"] == ["OPSLOOP_TEST_TOKEN"]
    assert SECRET not in str(jail.answers) and SECRET not in str(await service.timeline(cid))
    await service.aclose()


async def test_unknown_tools_bad_arguments_and_calls_over_the_limit_are_refused_and_recorded(
    monkeypatch,
) -> None:
    async def block(relay) -> str:  # type: ignore[no-untyped-def]
        answers = [
            await relay(call("rm_rf")),
            await relay(call("echo", text=1)),
            await relay({"op": "call", "tool": "echo", "arguments": ["not", "a", "dict"]}),
            await relay(call("echo", text="fourth")),
        ]
        return "\n".join(str(a.get("refused")) for a in answers)

    service, cid, jail = await converse(block, monkeypatch)
    refused = [e for e in await service.timeline(cid) if e["type"] == "ToolRefused"]
    assert [e["call_id"] for e in refused] == ["t1b1c1", "t1b1c2", "t1b1c3", "t1b1c4"]
    assert "rm_rf" in refused[0]["reason"]
    assert "text" in refused[1]["reason"]
    assert "object" in refused[2]["reason"]
    assert "at most 3 times" in refused[3]["reason"]
    assert all(a["refused"] is True and a["ok"] is False for a in jail.answers)
    await service.aclose()


async def test_a_call_still_running_when_its_block_ends_is_stopped_and_recorded_unknown_first(
    monkeypatch,
) -> None:
    async def block(relay) -> str:  # type: ignore[no-untyped-def]
        task = asyncio.ensure_future(relay(call("slow")))
        await asyncio.sleep(0.3)  # the jail is killed at its wall limit meanwhile
        task.cancel()
        return "killed"

    service, cid, _ = await converse(block, monkeypatch, turn=helpers("tools.slow()"))
    timeline = await service.timeline(cid)
    assert kinds(timeline)[3:7] == [
        "BlockStarted",
        "ToolCalled",
        "ToolOutcomeUnknown",
        "BlockFinished",
    ]
    [unknown] = [e for e in timeline if e["type"] == "ToolOutcomeUnknown"]
    assert "stopped" in unknown["detail"]
    left = [c for c in psutil.Process().children(recursive=True) if c.name() == "sleep"]
    assert left == []  # the tool's process was killed, not left running on the host
    await service.aclose()


async def test_a_block_may_call_only_the_tools_its_code_names(monkeypatch) -> None:
    async def block(relay) -> str:  # type: ignore[no-untyped-def]
        return str(await relay(call("whoami_token")))  # what getattr(tools, name) would send

    service, cid, jail = await converse(
        block, monkeypatch, turn=helpers("print(tools.echo(text='hi'))")
    )
    refused = next(e for e in await service.timeline(cid) if e["type"] == "ToolRefused")
    assert refused["reason"].startswith("whoami_token is not named in this block's code")
    assert jail.answers[0]["refused"] is True
    assert SECRET not in str(await service.timeline(cid))
    await service.aclose()


async def test_the_replay_shows_each_call_under_its_block_in_every_format(monkeypatch) -> None:
    async def block(relay) -> str:  # type: ignore[no-untyped-def]
        return str((await relay(call("echo", text="hi")))["result"])

    service, cid, _ = await converse(block, monkeypatch)
    timeline = await service.timeline(cid)
    text = "\n".join(render(timeline, fmt="text"))
    markdown = "\n".join(render(timeline, fmt="markdown"))
    lines = list(render(timeline, fmt="json"))
    assert 'tool call t1b1c1 by block t1b1 for U0ALICE: echo {"text": "hi"}' in text
    assert "tool call t1b1c1 returned 3 bytes" in text
    assert "- tool call t1b1c1 by block t1b1" in markdown
    assert any('"type":"ToolCalled"' in line for line in lines)
    await service.aclose()
