"""``[tools]`` of ``opsloop.toml``: the tools blocks may call through the broker (issue 11).

``[tools] calls_per_block`` bounds the calls of one block; every other key is one tool,
``[tools.NAME]``. One model holds the keys of every kind, and a key is checked against the
tool's ``kind`` by its own validator, so an error names the exact key
(``opsloop.toml: tools.disk.argv: use a list: argv = [...]``) rather than a union branch.
Nothing here reads the environment: ``${env:VAR}`` is resolved when the registry is built.
"""

from __future__ import annotations

import json
import keyword
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bot.tools import templates
from bot.tools.params import check_value

Kind = Literal["command", "http", "mcp"]
ParamType = Literal["string", "integer", "number", "boolean"]
Scalar = bool | int | float | str  # bool first: TOML booleans stay booleans
RESERVED_NAMES = frozenset({"list", "ToolError"})  # attributes of the jail's `tools` module
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _error(message: str) -> PydanticCustomError:
    return PydanticCustomError("tools", "{message}", {"message": message})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolParam(_Section):
    """One parameter of a command or http tool."""

    type: ParamType = "string"
    description: str = ""
    default: Scalar | None = None  # none: the parameter is required
    enum: list[Scalar] | None = None
    pattern: str | None = None  # strings: re.fullmatch
    min: float | None = None  # integers and numbers
    max: float | None = None

    @model_validator(mode="after")
    def _coherent(self) -> ToolParam:
        numeric = self.type in ("integer", "number")
        if self.pattern is not None:
            if self.type != "string":
                raise _error("pattern applies to string parameters only")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise _error(f"pattern is not a valid regular expression: {exc}") from None
        if (self.min is not None or self.max is not None) and not numeric:
            raise _error("min and max apply to integer and number parameters only")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _error("min is greater than max")
        for value in [*(self.enum or []), *([] if self.default is None else [self.default])]:
            if problem := check_value(self, value):
                raise _error(f"{value!r}: {problem}")
        return self


class ToolDecl(_Section):
    """One ``[tools.NAME]`` table: common keys, then the keys of each kind."""

    kind: Kind
    description: str = ""
    params: dict[str, ToolParam] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    max_result_bytes: int = Field(default=65536, ge=64, le=64 * 1024 * 1024)
    allow_users: list[str] = Field(default_factory=list)  # "U012" or "slack:U012"
    allow_channels: list[str] = Field(default_factory=list)
    allow_roles: list[str] = Field(default_factory=list)  # issue 12: [roles]
    approve: Literal["never", "always"] = "never"  # issue 12: approval before the block runs
    # kind = "command"
    argv: list[str] | None = None
    cwd: str | None = None
    env: dict[str, str] | None = None  # also mcp (stdio)
    run_as: str | int | None = None  # a host user name or uid
    # kind = "http"
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] | None = None
    url: str | None = None  # also mcp (streamable HTTP)
    headers: dict[str, str] | None = None  # also mcp
    body: dict[str, Any] | list[Any] | None = None
    # kind = "mcp"
    command: list[str] | None = None
    include: list[str] | None = None
    exclude: list[str] | None = None

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, kind: Any) -> Any:
        if kind not in ("command", "http", "mcp"):
            raise _error(f"unknown kind {kind!r} (kinds: command, http, mcp)")
        return kind

    @field_validator("params")
    @classmethod
    def _param_names(cls, params: dict[str, ToolParam], info: ValidationInfo) -> Any:
        if params and info.data.get("kind") == "mcp":
            raise _error("an mcp tool takes its parameters from the server's schemas")
        for name in params:
            if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
                raise _error(f"{name!r} is not a usable parameter name (a Python identifier)")
        return params

    @field_validator("argv", "command", mode="before")
    @classmethod
    def _a_list(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            raise _error(f"use a list: {info.field_name} = [...] (no shell is ever used)")
        if isinstance(value, list) and not value:
            raise _error("must name a command")
        return value

    @field_validator("argv")
    @classmethod
    def _argv(cls, argv: list[str], info: ValidationInfo) -> Any:
        _only(("command",), info)
        if templates.placeholders(argv[0]):
            raise _error("argv[0] must be a fixed command, not a {placeholder}")
        for item in argv:
            if templates.placeholders(item) and templates.whole_placeholder(item) is None:
                raise _error(
                    f"{item!r}: a {{placeholder}} must be a whole argv item, "
                    'e.g. ["--path", "{path}"], never part of one'
                )
            _no_env(item, "argv")
            _declared(templates.placeholders(item), info)
        return argv

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, cwd: str, info: ValidationInfo) -> Any:
        _only(("command",), info)
        if not cwd.startswith("/"):
            raise _error("must be an absolute path")
        _no_env(cwd, "cwd")
        return cwd

    @field_validator("run_as")
    @classmethod
    def _run_as(cls, run_as: str | int, info: ValidationInfo) -> Any:
        _only(("command",), info)
        return run_as

    @field_validator("env", "headers")
    @classmethod
    def _secrets_table(cls, table: dict[str, str], info: ValidationInfo) -> Any:
        _only(("command", "mcp") if info.field_name == "env" else ("http", "mcp"), info)
        for key, value in table.items():
            if info.field_name == "env" and not _ENV_NAME.fullmatch(key):
                raise _error(f"{key!r} is not an environment variable name")
            if problem := templates.env_problem(value):
                raise _error(f"{key}: {problem}")
            if templates.placeholders(templates.ENV_REF.sub("", value)):
                raise _error(f"{key}: parameters cannot be used here, only ${{env:VAR}}")
        return table

    @field_validator("method", mode="before")
    @classmethod
    def _method(cls, method: Any, info: ValidationInfo) -> Any:
        _only(("http",), info)
        return method.upper() if isinstance(method, str) else method

    @field_validator("url")
    @classmethod
    def _url(cls, url: str, info: ValidationInfo) -> Any:
        _only(("http", "mcp"), info)
        if problem := templates.url_problem(url):
            raise _error(problem)
        _no_env(url, "url")
        if info.data.get("kind") == "mcp" and templates.placeholders(url):
            raise _error("an mcp server's url takes no {placeholder}")
        _declared(templates.placeholders(url), info)
        return url

    @field_validator("body")
    @classmethod
    def _body(cls, body: Any, info: ValidationInfo) -> Any:
        _only(("http",), info)
        if problem := templates.body_problem(body):
            raise _error(problem)
        _no_env(json.dumps(body), "body")
        _declared(templates.body_placeholders(body), info)
        return body

    @field_validator("command", "include", "exclude")
    @classmethod
    def _mcp_only(cls, value: list[str], info: ValidationInfo) -> Any:
        _only(("mcp",), info)
        return value

    @model_validator(mode="after")
    def _complete(self) -> ToolDecl:
        if self.kind == "command" and self.argv is None:
            raise _error("a command tool needs argv = [...]")
        if self.kind == "http":
            if self.url is None:
                raise _error("an http tool needs url = ...")
            if self.body is not None and self.method in (None, "GET", "HEAD"):
                raise _error("a body needs method = POST, PUT, PATCH or DELETE")
        if self.kind == "mcp" and (self.command is None) == (self.url is None):
            raise _error("an mcp tool needs either command = [...] (stdio) or url = ...")
        used = {*templates.placeholders(" ".join(self.argv or [])), *self.url_params()}
        used |= set(templates.body_placeholders(self.body))
        unused = sorted(set(self.params) - used)
        if unused:
            raise _error(f"params.{unused[0]} is declared but used in no template")
        return self

    def url_params(self) -> list[str]:
        """Placeholders of the url template."""
        return templates.placeholders(self.url or "")


class ToolsPolicy(_Section):
    """``[tools]``: ``calls_per_block``, and one ``[tools.NAME]`` table per tool."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, ToolDecl] = Field(init=False)

    calls_per_block: int = Field(default=20, ge=1, le=10_000)

    @model_validator(mode="before")
    @classmethod
    def _names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, value in data.items():
            if name == "calls_per_block":
                continue
            if not isinstance(value, dict):
                raise _error(f"{name} is not a key of [tools]; a tool is a table [tools.{name}]")
            if not _IDENTIFIER.fullmatch(name) or keyword.iskeyword(name):
                raise _error(f"{name!r} is not a usable tool name (a Python identifier)")
            if name in RESERVED_NAMES:
                raise _error(f"{name!r} is taken by the tools module itself; choose another name")
        return data

    @property
    def declared(self) -> dict[str, ToolDecl]:
        """The declared tools, by name."""
        return dict(self.__pydantic_extra__ or {})


def _only(kinds: tuple[str, ...], info: ValidationInfo) -> None:
    kind = info.data.get("kind")
    if kind is not None and kind not in kinds:
        raise _error(f"{info.field_name} is not a key of a {kind} tool")


def _no_env(text: str, key: str) -> None:
    if "${" in text:
        raise _error(f"${{env:VAR}} is resolved only in env and headers, not in {key}")


def _declared(names: list[str], info: ValidationInfo) -> None:
    params = info.data.get("params", {})
    for name in names:
        if name not in params:
            raise _error(f"{{{name}}} is not a declared parameter (declare it under params)")
