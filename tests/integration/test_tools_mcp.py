"""MCP tools against a real server built with the same SDK, over stdio and streamable HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator

import pytest

from bot.tools.kind_mcp import ERRLOG_BYTES, McpServer
from bot.tools.registry import ToolRegistry
from bot.tools.specs import McpTarget
from tests.integration.tools_setup import (
    ALICE,
    PY,
    STANDIN,
    McpHttpStandin,
    gone,
    q,
    registry,
)

SECRET = "docs-7d1e0c94b2a6"


def stdio_tools(extra: str = "", *, env: str = 'DOCS_TOKEN = "${env:DOCS_TOKEN}"') -> ToolRegistry:
    return registry(
        f"""
[docs]
kind = "mcp"
description = "Runbooks"
command = [{q(PY)}, {q(STANDIN)}, "stdio"]
env = {{ {env} }}
exclude = ["write_note"]
{extra}
""",
        environ={"DOCS_TOKEN": SECRET},
    )


@pytest.fixture
async def docs() -> AsyncIterator[ToolRegistry]:
    tools = stdio_tools()
    yield tools
    await tools.aclose()


async def test_the_servers_tools_appear_as_name_dot_tool_with_its_own_descriptions(
    docs: ToolRegistry,
) -> None:
    specs = {spec.name: spec for spec in await docs.tools_for(ALICE)}
    assert set(specs) == {
        "docs.add", "docs.echo", "docs.pid", "docs.env", "docs.fail",
        "docs.slow", "docs.big", "docs.search", "docs.shout",
    }  # fmt: skip
    add = specs["docs.add"]
    assert (add.kind, add.server, add.description) == ("mcp", "docs", "Add two integers.")
    assert add.schema["required"] == ["a", "b"]
    assert add.signature == "docs.add(a: int, b: int) -> str | dict | list"
    assert specs["docs.search"].signature.startswith("docs.search(query: str, limit: int = 5)")
    assert add.server_description == (
        "Runbooks — standin 1.0 — A test server for opsloop: arithmetic, echo, failures and delays."
    )


async def test_include_offers_only_the_listed_tools() -> None:
    tools = stdio_tools('include = ["add", "echo"]')
    assert [s.name for s in await tools.tools_for(ALICE)] == ["docs.add", "docs.echo"]
    outcome = await tools.call("docs.search", {"query": "x"}, caller=ALICE)
    assert outcome.refused == "unknown tool docs.search (tools: docs.add, docs.echo)"
    await tools.aclose()


async def test_a_call_returns_structured_content_or_text(docs: ToolRegistry) -> None:
    assert (await docs.call("docs.add", {"a": 2, "b": 40}, caller=ALICE)).result == {"result": 42}
    search = await docs.call("docs.search", {"query": "disk", "limit": 2}, caller=ALICE)
    assert search.result == {"query": "disk", "hits": ["runbook-0", "runbook-1"]}


async def test_arguments_are_checked_against_the_tools_schema_before_the_call(
    docs: ToolRegistry,
) -> None:
    outcome = await docs.call("docs.add", {"a": "two", "b": 40}, caller=ALICE)
    assert outcome.refused == "parameter 'a' must be integer (got string)"
    outcome = await docs.call("docs.add", {"a": 1}, caller=ALICE)
    assert outcome.refused == "parameter 'b' is missing"
    outcome = await docs.call("docs.write_note", {"text": "x"}, caller=ALICE)
    assert outcome.refused is not None and outcome.refused.startswith(
        "unknown tool docs.write_note"
    )
    outcome = await docs.call("docs", {}, caller=ALICE)
    assert outcome.refused == "docs is an MCP server: call one of its tools, docs.TOOL"


async def test_an_is_error_result_is_a_failed_call(docs: ToolRegistry) -> None:
    outcome = await docs.call("docs.fail", {"message": "index is corrupt"}, caller=ALICE)
    assert (outcome.ok, outcome.refused) == (False, None)
    assert outcome.error is not None and "index is corrupt" in outcome.error


async def test_a_secret_in_the_servers_answer_is_redacted(docs: ToolRegistry) -> None:
    outcome = await docs.call("docs.env", {"name": "DOCS_TOKEN"}, caller=ALICE)
    assert outcome.result == {"result": "[redacted:DOCS_TOKEN]"}
    assert outcome.redacted == ("DOCS_TOKEN",)
    echoed = await docs.call("docs.echo", {"text": f"token is {SECRET}"}, caller=ALICE)
    assert echoed.result == {"result": "token is [redacted:DOCS_TOKEN]"}


async def test_a_secret_in_the_servers_own_texts_is_redacted_from_the_listing() -> None:
    tools = stdio_tools(env='STANDIN_MOTTO = " Key: ${env:DOCS_TOKEN}"')
    [spec, *_] = await tools.tools_for(ALICE)
    assert spec.server_description.endswith("delays. Key: [redacted:DOCS_TOKEN]")
    await tools.aclose()


async def test_a_slow_tool_times_out_and_the_server_keeps_serving() -> None:
    tools = stdio_tools("timeout_seconds = 0.5")
    outcome = await tools.call("docs.slow", {"seconds": 3}, caller=ALICE)
    assert (outcome.ok, outcome.error) == (False, "timed out after 0.5 s")
    assert (await tools.call("docs.add", {"a": 1, "b": 1}, caller=ALICE)).result == {"result": 2}
    assert tools.server_starts("docs") == 1
    await tools.aclose()


async def test_a_result_over_the_cap_is_cut_and_marked() -> None:
    tools = stdio_tools("max_result_bytes = 1000")
    outcome = await tools.call("docs.big", {"size": 100_000}, caller=ALICE)
    assert outcome.ok and outcome.truncated
    assert isinstance(outcome.result, str) and len(outcome.result.encode()) == 1000
    await tools.aclose()


async def server_pid(tools: ToolRegistry) -> int:
    outcome = await tools.call("docs.pid", {}, caller=ALICE)
    assert isinstance(outcome.result, dict)
    return int(outcome.result["result"])


async def test_a_server_killed_between_calls_is_restarted_once_for_the_next_call(
    docs: ToolRegistry,
) -> None:
    first = await server_pid(docs)
    os.kill(first, signal.SIGKILL)
    assert gone(first)
    await asyncio.sleep(0.3)  # its closed stdout reaches the session
    outcome = await docs.call("docs.add", {"a": 1, "b": 2}, caller=ALICE)
    assert (outcome.ok, outcome.result) == (True, {"result": 3})
    assert docs.server_starts("docs") == 2
    assert await server_pid(docs) != first


async def test_a_server_that_dies_during_a_call_fails_that_call_and_serves_the_next(
    docs: ToolRegistry,
) -> None:
    pid = await server_pid(docs)
    call = asyncio.create_task(docs.call("docs.slow", {"seconds": 5}, caller=ALICE))
    await asyncio.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    outcome = await call
    assert not outcome.ok
    assert outcome.error is not None and "during the call (not repeated" in outcome.error
    assert (await docs.call("docs.add", {"a": 1, "b": 2}, caller=ALICE)).result == {"result": 3}
    assert docs.server_starts("docs") == 2


async def test_a_server_that_will_not_start_is_a_failed_call_and_a_failed_check() -> None:
    tools = registry(
        f'[broken]\nkind = "mcp"\ncommand = [{q(PY)}, "-c", "import sys; sys.exit(3)"]\n'
    )
    assert await tools.tools_for(ALICE) == []
    outcome = await tools.call("broken.anything", {}, caller=ALICE)
    assert outcome.error is not None
    assert outcome.error.startswith("MCP server broken is not available")
    [check] = await tools.check()
    assert not check.ok and check.detail.startswith("MCP server broken is not available")
    await tools.aclose()


async def test_closing_the_registry_stops_the_server_process() -> None:
    tools = stdio_tools()
    pid = await server_pid(tools)
    await tools.aclose()
    assert gone(pid)


async def test_a_servers_stderr_is_kept_but_never_grows_past_its_cap() -> None:
    server = McpServer(
        McpTarget(
            name="docs", command=(PY, STANDIN, "stdio"), env={}, url=None, headers={}, timeout=30
        )
    )
    await server.call("shout", {"size": ERRLOG_BYTES + 10}, timeout=30, max_bytes=1000)
    assert len(server.stderr_tail(chars=10 * ERRLOG_BYTES)) > ERRLOG_BYTES
    await server.call("shout", {"size": 10}, timeout=30, max_bytes=1000)
    assert server.stderr_tail(chars=10 * ERRLOG_BYTES) == "!" * 10
    await server.aclose()


async def test_doctor_lists_what_a_server_offers(docs: ToolRegistry) -> None:
    [check] = await docs.check()
    assert (check.ok, check.detail) == (True, "standin 1.0 answered with 9 tools")
    assert "docs.add" in check.tools and "docs.write_note" not in check.tools


# -- streamable HTTP ---------------------------------------------------------------------

HTTP_TOKEN = "mcp-http-51c0f3a9d2"


@pytest.fixture
def http_standin() -> Iterator[McpHttpStandin]:
    standin = McpHttpStandin(token=HTTP_TOKEN)
    standin.start()
    yield standin
    standin.kill()


def http_tools(url: str, token: str = HTTP_TOKEN) -> ToolRegistry:
    return registry(
        f"""
[remote]
kind = "mcp"
url = "{url}"
headers = {{ Authorization = "Bearer ${{env:REMOTE_TOKEN}}" }}
timeout_seconds = 5
""",
        environ={"REMOTE_TOKEN": token},
    )


async def test_a_streamable_http_server_is_reached_with_its_secret_header(
    http_standin: McpHttpStandin,
) -> None:
    tools = http_tools(http_standin.url)
    names = [spec.name for spec in await tools.tools_for(ALICE)]
    assert "remote.add" in names and "remote.write_note" in names
    assert (await tools.call("remote.add", {"a": 5, "b": 6}, caller=ALICE)).result == {"result": 11}
    echoed = await tools.call("remote.echo", {"text": f"Bearer {HTTP_TOKEN}"}, caller=ALICE)
    assert echoed.result == {"result": "Bearer [redacted:REMOTE_TOKEN]"}
    await tools.aclose()


async def test_a_wrong_header_means_the_server_is_not_available(
    http_standin: McpHttpStandin,
) -> None:
    tools = http_tools(http_standin.url, token="wrong")
    [check] = await tools.check()
    assert not check.ok and check.detail.startswith("MCP server remote is not available")
    await tools.aclose()


async def test_a_restarted_http_server_gets_a_new_session_for_the_same_call(
    http_standin: McpHttpStandin,
) -> None:
    tools = http_tools(http_standin.url)
    assert (await tools.call("remote.add", {"a": 1, "b": 1}, caller=ALICE)).ok
    http_standin.kill()
    http_standin.start()  # it forgot our session: the call is sent again on a new one
    outcome = await tools.call("remote.add", {"a": 2, "b": 2}, caller=ALICE)
    assert (outcome.ok, outcome.result) == (True, {"result": 4})
    assert tools.server_starts("remote") == 2
    await tools.aclose()


async def test_a_stopped_http_server_fails_the_call_and_is_reached_again_when_back(
    http_standin: McpHttpStandin,
) -> None:
    tools = http_tools(http_standin.url)
    assert (await tools.call("remote.add", {"a": 1, "b": 1}, caller=ALICE)).ok
    http_standin.kill()
    down = await tools.call("remote.add", {"a": 1, "b": 1}, caller=ALICE)
    assert down.error is not None and down.error.startswith("MCP server remote is not available")
    http_standin.start()
    outcome = await tools.call("remote.add", {"a": 2, "b": 3}, caller=ALICE)
    assert (outcome.ok, outcome.result) == (True, {"result": 5})
    await tools.aclose()
