# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
"""Tools and mounts in ``OPSLOOP_SANDBOX=unsafe-local`` (no namespaces): tools work through a
socket in the run's scratch directory; mount names are checked but nothing is mounted."""

from __future__ import annotations

import logging

import pytest

from sandbox.errors import BadRequest
from sandbox.layout import LayoutOptions
from sandbox.limits import Limits
from sandbox.unsafe import UnsafeLocalSandbox
from tests.integration.sandbox_fixtures import data_dir, workspaces  # noqa: F401
from tests.integration.tool_broker_fake import FakeBroker

LIMITS = Limits(wall_seconds=10)


async def test_unsafe_local_blocks_call_tools_in_python_and_bash(workspaces) -> None:
    sandbox = UnsafeLocalSandbox(workspaces=workspaces)
    python = await sandbox.run(
        language="python",
        code="import tools\nprint(tools.disk(path='/u'))",
        limits=LIMITS,
        tools=FakeBroker(),
        workspace="w1",
    )
    bash = await sandbox.run(
        language="bash", code="tool count n=4 | head -2", limits=LIMITS, tools=FakeBroker()
    )
    assert python.unsafe_local and python.stdout == "disk of /u\n", python.stderr
    assert bash.stdout == '{\n  "tool": "count",\n', bash.stderr


async def test_unsafe_local_checks_mount_names_but_mounts_nothing_and_says_so(
    workspaces, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    sandbox = UnsafeLocalSandbox(
        workspaces=workspaces, options=LayoutOptions(mounts={"logs": "/var/log"})
    )
    result = await sandbox.run(
        language="bash", code="ls /mnt/logs 2>&1 | head -1", limits=LIMITS, mounts=["logs"]
    )
    assert "No such file" in result.stdout
    assert any("mounts logs are not provided" in r.getMessage() for r in caplog.records)
    with pytest.raises(BadRequest, match="unknown mount 'nope'"):
        await sandbox.run(language="bash", code="true", limits=LIMITS, mounts=["nope"])
