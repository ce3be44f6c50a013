"""``opsloop tools list`` and ``opsloop tools call``: the configured tools, from the host.

``call`` runs a tool as the operator at the console, outside any conversation: the same
validation, limits and redaction as a block's call, but chat allowlists do not apply (they
say who in chat may call what) and nothing is recorded in a conversation. Exit status: 0
when the tool answered, 1 when it failed, 2 when the call was refused (bad input).
"""

from __future__ import annotations

import asyncio
import getpass
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.errors import ConfigError
from bot.visible import visible

if TYPE_CHECKING:
    from bot.tools.registry import ToolRegistry
    from bot.tools.values import ToolCheck, ToolSpec


def register(app: typer.Typer) -> None:
    """Add ``opsloop tools`` to ``app``."""
    tools_app = typer.Typer(help="The tools blocks may call ([tools] in opsloop.toml).")
    app.add_typer(tools_app, name="tools", no_args_is_help=True)
    tools_app.command("list", help="Every configured tool, who may call it, and its state.")(
        list_tools
    )
    tools_app.command("call", help="Call a tool from the host: NAME key=value ...")(call_tool)


def _registry() -> ToolRegistry:
    from bot.cli.bootstrap import load_settings, tool_registry

    settings, policy = load_settings()
    registry = tool_registry(policy, settings=settings)
    if registry is None:
        raise ConfigError("no tools are configured: add a [tools.NAME] table to opsloop.toml")
    return registry


def _operator() -> Any:
    from bot.tools.values import Caller

    return Caller(platform="host", user=getpass.getuser(), operator=True)


def list_tools(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """``opsloop tools list``."""
    registry = _registry()

    async def gather() -> tuple[list[ToolSpec], list[ToolCheck]]:
        try:
            return await registry.tools_for(_operator()), await registry.check()
        finally:
            await registry.aclose()

    specs, checks = asyncio.run(gather())
    rows = _rows(registry, specs, checks)
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for row in rows:
        state = "ok" if row["ok"] else f"PROBLEM: {row['detail']}"
        print(visible(f"{row['name']}  ({row['kind']}; {row['who']}; approve {row['approve']})"))
        print(
            visible(f"    {row['signature'] or '(its server offers the tools below)'}  [{state}]")
        )
        if row["description"]:
            print(visible(f"    {row['description'].splitlines()[0][:160]}"))


def _rows(
    registry: ToolRegistry, specs: list[ToolSpec], checks: list[ToolCheck]
) -> list[dict[str, Any]]:
    """One row per tool an operator can call, MCP tools under their server's state."""
    by_name = {check.name: check for check in checks}
    rows = []
    for spec in specs:
        table = spec.server or spec.name
        decl = registry.declarations[table]
        check = by_name.get(table)
        rows.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                "description": spec.description,
                "signature": spec.signature,
                "schema": spec.schema,
                "who": _who(decl.allow_users, decl.allow_roles, decl.allow_channels),
                "allow_users": list(decl.allow_users),
                "allow_roles": list(decl.allow_roles),
                "allow_channels": list(decl.allow_channels),
                "approve": decl.approve,
                "ok": check.ok if check else True,
                "detail": check.detail if check else "",
            }
        )
    listed = {spec.server or spec.name for spec in specs}
    for check in checks:  # an MCP server that did not answer lists no tools: show it anyway
        if check.name not in listed:
            decl = registry.declarations[check.name]
            who = _who(decl.allow_users, decl.allow_roles, decl.allow_channels)
            rows.append(
                {
                    "name": check.name,
                    "kind": check.kind,
                    "description": "",
                    "signature": "",
                    "schema": {},
                    "who": who,
                    "allow_users": list(decl.allow_users),
                    "allow_roles": list(decl.allow_roles),
                    "allow_channels": list(decl.allow_channels),
                    "approve": decl.approve,
                    "ok": check.ok,
                    "detail": check.detail,
                }
            )
    return rows


def _who(users: list[str], roles: list[str], channels: list[str]) -> str:
    parts = []
    if users or roles:
        parts.append("users " + ", ".join([*users, *(f"role {r}" for r in roles)]))
    if channels:
        parts.append("in " + ", ".join(channels))
    return "; ".join(parts) or "everyone allowed on the surface"


def call_tool(
    name: Annotated[str, typer.Argument(help="The tool (SERVER.TOOL for an MCP server's tool).")],
    pairs: Annotated[list[str] | None, typer.Argument(help="Arguments as key=value.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """``opsloop tools call``."""
    from bot.tools.params import arguments_from_pairs

    registry = _registry()

    async def go() -> Any:
        try:
            spec = next((s for s in await registry.tools_for(_operator()) if s.name == name), None)
            arguments = arguments_from_pairs(pairs or [], spec.schema if spec else {})
            return await registry.call(name, arguments, caller=_operator())
        finally:
            await registry.aclose()

    outcome = asyncio.run(go())
    if as_json:
        print(json.dumps(_outcome_dict(outcome), indent=2, ensure_ascii=False))
    elif outcome.ok:
        result = outcome.result
        text = (
            result if isinstance(result, str) else json.dumps(result, indent=2, ensure_ascii=False)
        )
        print(visible(text or ""), end="" if isinstance(result, str) else "\n")
    else:
        typer.echo(visible(f"opsloop: {outcome.error}"), err=True)
    raise typer.Exit(0 if outcome.ok else 2 if outcome.refused else 1)


def _outcome_dict(outcome: Any) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(outcome)
    data["redacted"] = list(data["redacted"])
    return data
