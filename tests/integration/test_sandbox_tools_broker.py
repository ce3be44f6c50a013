# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
"""Both halves for real: a block in a real nsjail calls tools through the broker
(``bot.tools.broker``) and the registry running real host commands; the block's own jail
client and the broker speak the same frames."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from bot.tools.broker import BlockBroker
from bot.tools.config import ToolsPolicy
from bot.tools.registry import ToolRegistry
from bot.tools.values import Caller, ToolOutcome
from sandbox.limits import Limits
from tests.integration.sandbox_fixtures import data_dir, jail, workspaces  # noqa: F401

pytestmark = pytest.mark.nsjail
TOOLS = {
    "calls_per_block": 4,
    "echo": {
        "kind": "command",
        "description": "Say something back.",
        "argv": ["echo", "-n", "{text}", "{times}"],
        "params": {"text": {"type": "string"}, "times": {"type": "integer", "default": 1}},
    },
    "secret": {
        "kind": "command",
        "description": "Print the token the tool holds.",
        "argv": ["printenv", "TOKEN"],
        "env": {"TOKEN": "${env:OPSLOOP_TEST_TOKEN}"},
    },
}
TOKEN = "t0ken-that-must-not-leak-0123"


class Record:
    """The broker's ``ToolLog``: what it would record as events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def called(self, **fields: Any) -> None:
        self.events.append(("called", fields))

    async def returned(self, *, call_id: str, outcome: ToolOutcome) -> None:
        self.events.append(("returned", {"call_id": call_id, "ok": outcome.ok}))

    async def refused(self, **fields: Any) -> None:
        self.events.append(("refused", fields))

    async def unknown(self, **fields: Any) -> None:
        self.events.append(("unknown", fields))


def broker(allowed: frozenset[str] | None = None) -> tuple[BlockBroker, Record]:
    registry = ToolRegistry.build(
        ToolsPolicy.model_validate(TOOLS), environ={"OPSLOOP_TEST_TOKEN": TOKEN}
    )
    record = Record()
    caller = Caller(platform="slack", user="U1", channel="C1", allowed=allowed)
    return BlockBroker(registry=registry, caller=caller, block_id="b1", log=record), record


async def test_a_block_calls_a_real_host_command_through_the_broker(jail) -> None:
    relay, record = broker()
    code = """
        import tools
        print(tools.echo(text="hi from the host"))
        print(tools.echo.__doc__.splitlines()[0])
        try:
            tools.echo(text=1)
        except tools.ToolError as exc:
            print("refused:", exc.refused, exc)
        print(tools.secret().strip())
    """
    result = await jail.run(
        language="python",
        code=textwrap.dedent(code),
        limits=Limits(wall_seconds=10),
        tools=relay.relay,
    )
    await relay.settle()
    lines = result.stdout.splitlines()
    assert lines[0] == "hi from the host 1", result.stderr
    assert lines[1] == "echo(text: str, times: int = 1) -> str"
    assert lines[2].startswith("refused: True parameter 'text'")
    assert lines[3] == "[redacted:OPSLOOP_TEST_TOKEN]"
    assert TOKEN not in result.stdout + result.stderr
    assert [kind for kind, _ in record.events] == [
        "called",
        "returned",
        "called",
        "refused",
        "called",
        "returned",
    ]


async def test_bash_tool_and_the_brokers_per_block_limit(jail) -> None:
    relay, record = broker()
    code = "for i in 1 2 3 4 5; do tool echo text=$i times=2 || echo status=$?; done"
    result = await jail.run(
        language="bash", code=code, limits=Limits(wall_seconds=10), tools=relay.relay
    )
    await relay.settle()
    assert result.stdout == "1 2\n2 2\n3 2\n4 2\nstatus=3\n", result.stderr
    assert "at most 4 times ([tools] calls_per_block)" in result.stderr
