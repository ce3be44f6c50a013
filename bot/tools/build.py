"""From ``[tools]`` to executors: ``${env:VAR}`` resolved on the host, users looked up.

The environment is a mapping passed in (the composition root passes ``os.environ``); every
value it gives a tool is recorded as a secret (VAR -> value) so each exit can redact it.
A problem is a one-line ``ConfigError`` naming the key, raised at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.errors import ConfigError
from bot.tools import templates
from bot.tools.config import ToolDecl, ToolsPolicy
from bot.tools.kind_command import base_env, identity
from bot.tools.specs import CommandTool, HttpTool, McpTarget

Spec = CommandTool | HttpTool | McpTarget


@dataclass(frozen=True)
class Built:
    """One configured tool: its declaration and what its executor needs."""

    name: str
    decl: ToolDecl
    spec: Spec
    secrets: Mapping[str, str] = field(default_factory=dict)  # VAR -> value it uses


def build_all(tools: ToolsPolicy, *, environ: Mapping[str, str]) -> dict[str, Built]:
    """Every declared tool, built; ``ConfigError`` for a missing ``${env:VAR}`` or user."""
    return {name: build_one(name, decl, environ=environ) for name, decl in tools.declared.items()}


def build_one(name: str, decl: ToolDecl, *, environ: Mapping[str, str]) -> Built:
    """One tool, built."""
    where = f"opsloop.toml: tools.{name}"
    secrets: dict[str, str] = {}
    env = _resolve(decl.env or {}, environ=environ, where=f"{where}.env", secrets=secrets)
    headers = _resolve(
        decl.headers or {}, environ=environ, where=f"{where}.headers", secrets=secrets
    )
    spec: Spec
    if decl.kind == "command":
        assert decl.argv is not None  # the config's validators made sure
        try:
            who = identity(decl.run_as)
        except ValueError as exc:
            raise ConfigError(f"{where}.run_as: {exc}") from None
        spec = CommandTool(
            argv=tuple(decl.argv),
            cwd=decl.cwd,
            env={**base_env(who), **env},
            identity=who,
            timeout=decl.timeout_seconds,
            max_bytes=decl.max_result_bytes,
        )
    elif decl.kind == "http":
        assert decl.url is not None
        spec = HttpTool(
            method=decl.method or "GET",
            url=decl.url,
            headers=headers,
            body=decl.body,
            timeout=decl.timeout_seconds,
            max_bytes=decl.max_result_bytes,
        )
    else:
        spec = McpTarget(
            name=name,
            command=tuple(decl.command) if decl.command else None,
            env=env,
            url=decl.url,
            headers=headers,
            timeout=decl.timeout_seconds,
        )
    return Built(name=name, decl=decl, spec=spec, secrets=secrets)


def _resolve(
    table: Mapping[str, str], *, environ: Mapping[str, str], where: str, secrets: dict[str, str]
) -> dict[str, str]:
    resolved = {}
    for key, value in table.items():
        try:
            resolved[key], used = templates.resolve_env(value, environ=environ)
        except KeyError as missing:
            raise ConfigError(
                f"{where}.{key}: ${{env:{missing.args[0]}}} is not set in the environment"
            ) from None
        secrets.update(used)
    return resolved
