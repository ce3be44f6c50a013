# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
"""The jail's side of tools, in a real nsjail: ``import tools`` and the ``tool`` command,
against a hand-written broker (the ``ToolRelay`` port)."""

from __future__ import annotations

import json
import textwrap

import pytest

from sandbox.limits import Limits
from tests.integration.sandbox_fixtures import (  # noqa: F401  (fixtures)
    data_dir,
    jail,
    workspaces,
)
from tests.integration.tool_broker_fake import FakeBroker

pytestmark = pytest.mark.nsjail


async def py(jail, code: str, broker=None):  # type: ignore[no-untyped-def]
    return await jail.run(
        language="python",
        code=textwrap.dedent(code),
        limits=Limits(wall_seconds=10),
        tools=broker or FakeBroker(),
    )


async def sh(jail, code: str, broker=None):  # type: ignore[no-untyped-def]
    return await jail.run(
        language="bash", code=code, limits=Limits(wall_seconds=10), tools=broker or FakeBroker()
    )


# -- Python -----------------------------------------------------------------------------------


async def test_import_tools_works_under_the_default_flags_and_a_call_returns_its_result(
    jail,
) -> None:
    code = """
        import sys
        import tools
        print(sys.path[0], sys.flags.ignore_environment, sys.flags.no_user_site)
        print(tools.disk(path="/var"))
        print(tools.count(3, fast=True))
    """
    broker = FakeBroker()
    result = await py(jail, code, broker)
    assert result.stdout.splitlines() == [
        "/opsloop 1 1",
        "disk of /var",
        "{'tool': 'count', 'arguments': {'n': 3, 'fast': True}}",
    ], result.stderr
    assert broker.frames == [
        {"op": "list"},
        {"op": "call", "tool": "disk", "arguments": {"path": "/var"}},
        {"op": "call", "tool": "count", "arguments": {"n": 3, "fast": True}},
    ]


async def test_a_tools_doc_holds_its_signature_description_and_parameters(jail) -> None:
    result = await py(jail, "import tools; print(tools.disk.__doc__)")
    assert result.stdout == textwrap.dedent(
        """\
        disk(path: str = "/") -> str

        Disk usage of one mount point

        Parameters:
          path (string, default "/"): a mount
        """
    ), result.stderr


async def test_an_mcp_servers_tools_are_attributes_with_identifier_names_and_items_by_name(
    jail,
) -> None:
    code = """
        import tools
        print(sorted(dir(tools.docs)))
        print(tools.docs.search(query="a")["tool"])
        print(tools.docs.read_file(query="b")["tool"])
        print(tools.docs.class_(query="c")["tool"])
        print(tools.docs._2fa(query="d")["tool"])
        print(tools.docs["read-file"](query="e")["tool"])
        print(tools.docs.__doc__.splitlines()[0])
    """
    result = await py(jail, code)
    assert result.stdout.splitlines() == [
        "['_2fa', 'class_', 'read_file', 'search']",
        "docs.search",
        "docs.read-file",
        "docs.class",
        "docs.2fa",
        "docs.read-file",
        "MCP server docs: Runbooks and how-tos",
    ], result.stderr


async def test_tools_list_returns_what_the_conversation_may_call(jail) -> None:
    result = await py(jail, "import tools; print([t['name'] for t in tools.list()][:3])")
    assert result.stdout == "['disk', 'count', 'docs.search']\n", result.stderr


async def test_a_refused_or_failed_call_raises_tool_error_with_the_one_line_reason(jail) -> None:
    code = """
        import tools
        for name in ("refused", "failing", "boom"):
            try:
                getattr(tools, name)()
            except tools.ToolError as exc:
                print(name, exc.refused, exc)
    """
    result = await py(jail, code)
    assert result.stdout.splitlines() == [
        "refused True refused is not allowed for user slack:U1",
        "failing False exit status 3: oops",
        "boom False the tool broker failed",
    ], result.stderr


async def test_an_unhandled_tool_error_points_the_traceback_at_the_blocks_own_line(jail) -> None:
    code = "import tools\n\n\ntools.failing()\n"
    result = await py(jail, code)
    assert result.exit_code == 1
    assert 'File "/opsloop/code", line 4, in <module>' in result.stderr
    assert result.stderr.rstrip().endswith("tools.ToolError: exit status 3: oops")
    assert result.stderr.count('File "/opsloop/tools.py"') == 1  # the raise, nothing deeper


async def test_an_unknown_tool_is_an_attribute_error_naming_what_there_is(jail) -> None:
    result = await py(jail, "import tools\ntools.nope()\n")
    assert "AttributeError: no tool 'nope' in this conversation (tools: big, boom" in result.stderr


async def test_a_truncated_result_comes_back_with_a_warning(jail) -> None:
    result = await py(jail, "import tools\nprint(len(tools.big()))\n")
    assert result.stdout == "100\n"
    assert "UserWarning: tools.big: the result was cut at its size cap" in result.stderr
    assert result.stderr.startswith("/opsloop/code:2: UserWarning")  # the block's own line


async def test_threads_and_forked_children_each_get_their_answers(jail) -> None:
    code = """
        import os, threading, tools
        results = []
        def call(i):
            results.append(tools.count(i)["arguments"]["n"])
        threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print(sorted(results), flush=True)
        if os.fork() == 0:
            print("child", tools.count(99)["arguments"]["n"], flush=True)
            os._exit(0)
        os.wait()
        print("parent", tools.count(7)["arguments"]["n"])
    """
    result = await py(jail, code)
    assert result.stdout.splitlines() == ["[0, 1, 2, 3, 4, 5]", "child 99", "parent 7"], (
        result.stderr
    )


# -- bash ---------------------------------------------------------------------------------------


async def test_the_tool_command_prints_json_pretty_and_text_as_is(jail) -> None:
    result = await sh(jail, "tool disk path=/srv; tool count n=5 ratio=0.5 fast=yes")
    assert result.stdout.startswith('disk of /srv\n{\n  "tool": "count",\n'), result.stderr
    assert json.loads(result.stdout.split("\n", 1)[1]) == {
        "tool": "count",
        "arguments": {"n": 5, "ratio": 0.5, "fast": True},
    }


async def test_raw_json_values_and_mcp_tools_from_bash(jail) -> None:
    result = await sh(jail, """tool docs.read-file query:='{"deep": [1, 2]}'""")
    assert json.loads(result.stdout) == {
        "tool": "docs.read-file",
        "arguments": {"query": {"deep": [1, 2]}},
    }, result.stderr


async def test_a_refused_call_exits_3_with_the_reason_on_stderr(jail) -> None:
    result = await sh(jail, "tool refused; echo status=$?; tool failing; echo status=$?")
    assert result.stdout == "status=3\nstatus=3\n"
    assert result.stderr == (
        "tool: refused: refused is not allowed for user slack:U1\n"
        "tool: failing: exit status 3: oops\n"
    )


async def test_a_value_of_the_wrong_type_is_a_usage_error_before_any_call(jail) -> None:
    broker = FakeBroker()
    result = await sh(jail, "tool count n=three; echo status=$?", broker)
    assert result.stdout == "status=2\n"
    assert "tool: n: 'three' is not an integer" in result.stderr
    assert [f["op"] for f in broker.frames] == ["list"]


async def test_tool_list_and_a_tools_help(jail) -> None:
    result = await sh(jail, "tool --list | head -2; tool count --help | head -1; command -v tool")
    assert result.stdout.splitlines() == [
        'disk(path: str = "/") -> str',
        "    Disk usage of one mount point",
        "count(n: int, ratio: float = 1.0, fast: bool = False) -> dict",
        "/opsloop/bin/tool",
    ], result.stderr


async def test_a_run_with_a_workspace_reaches_its_tools_as_the_workspaces_own_uid(jail) -> None:
    result = await jail.run(
        language="bash",
        code="tool disk path=/w > /workspace/out.txt; cat /workspace/out.txt",
        limits=Limits(wall_seconds=10),
        tools=FakeBroker(),
        workspace="tools-ws",
    )
    assert result.stdout == "disk of /w\n", result.stderr
