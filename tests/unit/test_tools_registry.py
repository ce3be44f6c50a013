"""The registry's policy side: building, listing per caller, refusals as outcomes, redaction."""

from __future__ import annotations

import os
import tomllib

import pytest

from bot.config import Policy
from bot.errors import ConfigError
from bot.tools.config import ToolsPolicy
from bot.tools.registry import ToolRegistry
from bot.tools.values import Caller, ToolOutcome

ALICE = Caller(platform="slack", user="U1", channel="C1")
BOB = Caller(platform="slack", user="U2", channel="C9")
TOOLS = """
calls_per_block = 7

[disk]
kind = "command"
description = "Disk usage of a path"
argv = ["df", "-h", "--", "{path}"]
[disk.params.path]
description = "a mount point"
default = "/"
pattern = "/[a-z/]*"

[restart]
kind = "command"
argv = ["systemctl", "restart", "--", "{unit}"]
allow_users = ["slack:U1"]
allow_channels = ["C1"]
approve = "always"
[restart.params.unit]
enum = ["nginx", "api"]

[status]
kind = "http"
url = "https://status.example.com/v1/{service}"
headers = { Authorization = "Bearer ${env:STATUS_TOKEN}" }
[status.params.service]
"""
ENV = {"STATUS_TOKEN": "st-0a1b2c3d4e5f", "AUDIT_KEY": "audit-99887766"}


def build(text: str = TOOLS, environ: dict[str, str] | None = None) -> ToolRegistry:
    policy = ToolsPolicy.model_validate(tomllib.loads(text))
    return ToolRegistry.build(policy, environ=ENV if environ is None else environ)


async def test_a_caller_sees_only_the_tools_it_may_call() -> None:
    tools = build()
    assert [s.name for s in await tools.tools_for(ALICE)] == ["disk", "restart", "status"]
    assert [s.name for s in await tools.tools_for(BOB)] == ["disk", "status"]


async def test_a_spec_carries_what_the_prompt_needs() -> None:
    disk = (await build().tools_for(ALICE))[0]
    assert disk.signature == 'disk(path: str = "/") -> str'
    assert (disk.kind, disk.description, disk.timeout_seconds) == (
        "command",
        "Disk usage of a path",
        30.0,
    )
    assert disk.schema["properties"]["path"]["description"] == "a mount point"


async def test_refusals_are_outcomes_naming_the_reason() -> None:
    tools = build()

    async def refused(name: str, arguments: dict[str, object], caller: Caller = ALICE) -> str:
        outcome = await tools.call(name, arguments, caller=caller)
        assert isinstance(outcome, ToolOutcome) and not outcome.ok
        assert outcome.refused is not None and outcome.error == outcome.refused
        return outcome.refused

    assert await refused("dsk", {}) == "unknown tool 'dsk' (tools: disk, restart, status)"
    assert await refused("disk.sub", {}) == "unknown tool 'disk.sub' (tools: disk, restart, status)"
    assert await refused("disk", {"pth": "/"}) == "unknown parameter 'pth' (parameters: path)"
    assert await refused("disk", {"path": "/etc;ls"}) == (
        "parameter 'path' must match the pattern '/[a-z/]*'"
    )
    assert await refused("disk", {"path": 3}) == "parameter 'path' must be a string (got integer)"
    assert await refused("status", {}) == "missing parameter 'service'"
    assert await refused("restart", {"unit": "nginx"}, BOB) == (
        "restart is not allowed for user slack:U2"
    )
    assert await refused("restart", {"unit": "nginx"}) == (
        "restart needs approval, and this block was not approved to call it"
    )
    approved = Caller("slack", "U1", "C1", approved=frozenset({"restart"}))
    assert await refused("restart", {"unit": "db"}, approved) == (
        "parameter 'unit' must be one of 'nginx', 'api'"
    )
    assert await refused("disk", ["/"]) == "arguments must be an object of name=value pairs"  # type: ignore[arg-type]


def test_a_missing_env_variable_is_a_one_line_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        build(environ={})
    assert str(caught.value) == (
        "opsloop.toml: tools.status.headers.Authorization: "
        "${env:STATUS_TOKEN} is not set in the environment"
    )


def test_an_unknown_run_as_user_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError) as caught:
        build('[x]\nkind = "command"\nargv = ["id"]\nrun_as = "opsloop-no-such-user"\n')
    assert str(caught.value) == "opsloop.toml: tools.x.run_as: no host user 'opsloop-no-such-user'"


def test_run_as_another_user_needs_root() -> None:
    if os.geteuid() == 0:
        tools = build('[x]\nkind = "command"\nargv = ["id"]\nrun_as = "nobody"\n')
        assert tools.names == ("x",)
        return
    with pytest.raises(ConfigError, match="run_as: running as nobody needs root"):
        build('[x]\nkind = "command"\nargv = ["id"]\nrun_as = "nobody"\n')


def test_the_registry_knows_its_secrets_and_limits() -> None:
    policy = Policy.model_validate({"tools": tomllib.loads(TOOLS)})
    tools = ToolRegistry.build(policy, environ=ENV, redact_env=["AUDIT_KEY", "UNSET"])
    assert tools.secrets == {"STATUS_TOKEN": "st-0a1b2c3d4e5f", "AUDIT_KEY": "audit-99887766"}
    assert tools.calls_per_block == 7
    assert tools.names == ("disk", "restart", "status")


def test_redact_walks_json_results_keys_included() -> None:
    tools = build()
    value = {"st-0a1b2c3d4e5f": ["ok", "token st-0a1b2c3d4e5f"], "n": 3}
    redacted, names = tools.redact(value)
    assert redacted == {"[redacted:STATUS_TOKEN]": ["ok", "token [redacted:STATUS_TOKEN]"], "n": 3}
    assert names == ("STATUS_TOKEN",)


async def test_no_tools_means_an_empty_list_and_refusals() -> None:
    tools = ToolRegistry.build(Policy(), environ={})
    assert await tools.tools_for(ALICE) == []
    assert (await tools.call("x", {}, caller=ALICE)).refused == "unknown tool 'x' (tools: none)"
    assert await tools.check() == []
    await tools.aclose()
