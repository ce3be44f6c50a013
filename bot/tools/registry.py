"""The tool registry: what a caller may call, and calling it with validation and redaction.

The broker (which serves a block's socket) asks ``tools_for(caller)`` for what to offer and
``call(name, arguments, caller=...)`` for each call. A refusal (unknown tool, not allowed,
bad parameter) and a failure (timeout, exit status, HTTP status, dead MCP server) are
outcomes, never exceptions. Every result, error and refusal is redacted with
``domain.redaction`` before it is returned: the values of every ``${env:VAR}`` a tool uses,
of the ``redact_env`` variables, their encodings, and credential shapes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from bot.secrets import env_secrets
from bot.tools import access
from bot.tools.build import Built, build_all
from bot.tools.config import ToolDecl, ToolsPolicy
from bot.tools.errors import BadArguments, ToolError, ToolRefused
from bot.tools.kind_command import run_command
from bot.tools.kind_http import HttpClient, call_http, resolves
from bot.tools.params import check_arguments, params_schema, signature
from bot.tools.schema import check_schema
from bot.tools.specs import CommandTool, HttpTool, McpTarget
from bot.tools.values import Caller, RawResult, Result, ToolCheck, ToolOutcome, ToolSpec
from domain.redaction import MIN_SECRET_CHARS, Redactor

if TYPE_CHECKING:
    from bot.config import Policy
    from bot.tools.kind_mcp import McpServer
    from bot.tools.mcp_values import ServerTool


class ToolRegistry:
    """The configured tools: who may call what, validation, execution and redaction."""

    def __init__(
        self, *, tools: Mapping[str, Built], secrets: Mapping[str, str], calls_per_block: int
    ) -> None:
        self._tools = dict(tools)
        self._secrets = dict(secrets)
        self.redactor = Redactor(self._secrets)
        self.calls_per_block = calls_per_block
        self._http = HttpClient()
        self._servers = {n: _server(b) for n, b in self._tools.items() if b.decl.kind == "mcp"}

    @classmethod
    def build(
        cls,
        policy: Policy | ToolsPolicy,
        *,
        environ: Mapping[str, str],
        redact_env: Iterable[str] = (),
        known: Mapping[str, str] | None = None,
    ) -> ToolRegistry:
        """The registry of ``[tools]``; ``ConfigError`` (one line) for a tool that cannot be built.

        ``redact_env`` names more variables whose values are secrets (``[redact] env``), and
        ``known`` adds secrets by name (``bot.secrets.known_secrets``): the registry's
        ``redactor`` then knows every secret of the process.
        """
        tools = policy if isinstance(policy, ToolsPolicy) else policy.tools
        built = build_all(tools, environ=environ)
        secrets = dict(known or {})
        secrets.update(env_secrets(redact_env, environ=environ))
        secrets.update({var: value for b in built.values() for var, value in b.secrets.items()})
        return cls(tools=built, secrets=secrets, calls_per_block=tools.calls_per_block)

    @property
    def secrets(self) -> Mapping[str, str]:
        """Every secret value a tool uses or ``redact_env`` names (VAR -> value)."""
        return dict(self._secrets)

    @property
    def declarations(self) -> Mapping[str, ToolDecl]:
        """Each configured tool's declaration, by name (MCP servers as their table's name)."""
        return {name: built.decl for name, built in self._tools.items()}

    @property
    def names(self) -> tuple[str, ...]:
        """The configured tools, MCP servers as their table's name."""
        return tuple(self._tools)

    def server_starts(self, name: str) -> int:
        """How many times the MCP server ``name`` was started."""
        return self._servers[name].starts

    async def tools_for(self, caller: Caller) -> list[ToolSpec]:
        """What ``caller`` may call, MCP servers expanded into their tools."""
        specs: list[ToolSpec] = []
        servers = []
        for name, built in self._tools.items():
            if access.refusal(name, built.decl, caller, per_block=False) is not None:
                continue
            if built.decl.kind == "mcp":
                servers.append(name)
            else:
                specs.append(_spec(built))
        answers = await asyncio.gather(
            *(self._servers[n].info() for n in servers), return_exceptions=True
        )
        for name, info in zip(servers, answers, strict=True):
            if isinstance(info, BaseException):  # a dead server offers nothing this time
                if not isinstance(info, ToolError):
                    raise info
                continue
            for tool in self._offered(name, info.tools):
                spec = _mcp_spec(self._tools[name], tool, info.title, info.instructions)
                specs.append(self._redact_spec(spec))  # a server's texts are not ours
        return specs

    async def call(self, name: str, arguments: Mapping[str, Any], *, caller: Caller) -> ToolOutcome:
        """Call a tool for ``caller``: a result, a failure or a refusal, always redacted."""
        started = time.monotonic()
        try:
            raw = await self._run(name, arguments, caller)
        except ToolRefused as exc:
            reason, names = self._redact_text(str(exc))
            return ToolOutcome(ok=False, error=reason, refused=reason, redacted=names)
        except ToolError as exc:
            failure, names = self._redact_text(str(exc))
            return ToolOutcome(ok=False, error=failure, duration_ms=_ms(started), redacted=names)
        result, names = self.redact(raw.result)
        error: str | None = None
        more: tuple[str, ...] = ()
        if raw.error is not None:
            error, more = self._redact_text(raw.error)
        return ToolOutcome(
            ok=raw.ok,
            result=result,
            result_bytes=raw.result_bytes,
            truncated=raw.truncated,
            duration_ms=_ms(started),
            error=error,
            redacted=tuple(sorted({*names, *more})),
        )

    def redact(self, value: Result) -> tuple[Result, tuple[str, ...]]:
        """``value`` (text, or JSON data) redacted, and the names that were taken out."""
        redacted, names = self.redactor.redact_value(value)
        return redacted, names

    async def check(self) -> list[ToolCheck]:
        """For ``opsloop doctor``: commands exist, HTTP hosts resolve, MCP servers answer."""
        return list(await asyncio.gather(*(self._check(name) for name in self._tools)))

    async def aclose(self) -> None:
        """Stop the MCP servers and close the HTTP session."""
        await asyncio.gather(*(server.aclose() for server in self._servers.values()))
        await self._http.aclose()

    async def _run(self, name: str, arguments: Mapping[str, Any], caller: Caller) -> RawResult:
        if not isinstance(arguments, Mapping):
            raise BadArguments("arguments must be an object of name=value pairs")
        base, dot, tool = name.partition(".")
        built = self._tools.get(base)
        if built is None or (dot and built.decl.kind != "mcp"):
            known = ", ".join(sorted(self._tools)) or "none"
            raise ToolRefused(f"unknown tool {name!r} (tools: {known})")
        if built.decl.kind == "mcp" and not tool:
            raise ToolRefused(f"{name} is an MCP server: call one of its tools, {name}.TOOL")
        if (reason := access.refusal(name, built.decl, caller)) is not None:
            raise ToolRefused(reason)
        spec = built.spec
        if isinstance(spec, CommandTool):
            return await run_command(spec, check_arguments(built.decl.params, arguments))
        if isinstance(spec, HttpTool):
            checked = check_arguments(built.decl.params, arguments)
            return await call_http(spec, checked, client=self._http)
        return await self._call_mcp(built, tool, dict(arguments))

    async def _call_mcp(self, built: Built, tool: str, arguments: dict[str, Any]) -> RawResult:
        server = self._servers[built.name]
        info = await server.info()
        offered = {t.name: t for t in self._offered(built.name, info.tools)}
        if tool not in offered:
            known = ", ".join(f"{built.name}.{n}" for n in sorted(offered)) or "none"
            raise ToolRefused(f"unknown tool {built.name}.{tool} (tools: {known})")
        check_schema(offered[tool].schema, arguments)
        decl = built.decl
        return await server.call(
            tool, arguments, timeout=decl.timeout_seconds, max_bytes=decl.max_result_bytes
        )

    def _offered(self, name: str, tools: Iterable[ServerTool]) -> list[ServerTool]:
        decl = self._tools[name].decl
        return [
            t
            for t in tools
            if (not decl.include or t.name in decl.include) and t.name not in (decl.exclude or [])
        ]

    def _redact_spec(self, spec: ToolSpec) -> ToolSpec:
        schema, _ = self.redact(spec.schema)
        return dataclasses.replace(
            spec,
            description=self._redact_text(spec.description)[0],
            server_description=self._redact_text(spec.server_description)[0],
            schema=schema if isinstance(schema, dict) else {},
        )

    def _redact_text(self, text: str) -> tuple[str, tuple[str, ...]]:
        done = self.redactor.redact(text)
        return done.text, done.names

    async def _check(self, name: str) -> ToolCheck:
        found = await self._probe(name)
        short = sorted(set(self._tools[name].secrets) & set(self.redactor.ignored))
        if not short:
            return found
        note = f"; not redacted, shorter than {MIN_SECRET_CHARS} characters: " + ", ".join(short)
        return dataclasses.replace(found, detail=found.detail + note)

    async def _probe(self, name: str) -> ToolCheck:
        built = self._tools[name]
        spec, kind = built.spec, built.decl.kind
        if isinstance(spec, CommandTool):
            problem = _command_problem(spec)
            detail = problem or f"{spec.argv[0]} is executable"
            return ToolCheck(name=name, kind=kind, ok=problem is None, detail=detail)
        if isinstance(spec, HttpTool):
            problem = await resolves(spec.url)
            detail = problem or "its host resolves"
            return ToolCheck(name=name, kind=kind, ok=problem is None, detail=detail)
        try:
            info = await self._servers[name].info()
        except ToolError as exc:
            return ToolCheck(name=name, kind=kind, ok=False, detail=self._redact_text(str(exc))[0])
        offered = tuple(f"{name}.{t.name}" for t in self._offered(name, info.tools))
        detail = f"{info.title or 'server'} answered with {len(offered)} tools"
        return ToolCheck(name=name, kind=kind, ok=True, detail=detail, tools=offered)


def _spec(built: Built) -> ToolSpec:
    decl = built.decl
    schema = params_schema(decl.params)
    returns = "str" if decl.kind == "command" else "str | dict | list"
    return ToolSpec(
        name=built.name,
        kind=decl.kind,
        description=decl.description,
        schema=schema,
        signature=signature(built.name, schema, returns=returns),
        timeout_seconds=decl.timeout_seconds,
        max_result_bytes=decl.max_result_bytes,
        approve=decl.approve,
    )


def _mcp_spec(built: Built, tool: ServerTool, title: str, instructions: str) -> ToolSpec:
    decl = built.decl
    name = f"{built.name}.{tool.name}"
    about = " — ".join(p for p in (decl.description, title, instructions) if p)
    return ToolSpec(
        name=name,
        kind="mcp",
        description=tool.description,
        schema=tool.schema,
        signature=signature(name, tool.schema, returns="str | dict | list"),
        timeout_seconds=decl.timeout_seconds,
        max_result_bytes=decl.max_result_bytes,
        approve=decl.approve,
        server=built.name,
        server_description=about,
        read_only=tool.read_only,
    )


def _server(built: Built) -> McpServer:
    from bot.tools.kind_mcp import McpServer  # here: mcp takes 0.6 s to import

    assert isinstance(built.spec, McpTarget)
    return McpServer(built.spec)


def _command_problem(spec: CommandTool) -> str | None:
    program = spec.argv[0]
    path = program if "/" in program else shutil.which(program, path=spec.env.get("PATH"))
    if path is None:
        return f"{program} is not on PATH ({spec.env.get('PATH')})"
    if not os.access(path, os.X_OK):
        return f"{path} is not executable"
    if spec.cwd is not None and not os.path.isdir(spec.cwd):
        return f"cwd {spec.cwd} is not a directory"
    return None


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
