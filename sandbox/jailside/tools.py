"""opsloop's tools, called from a helper block (mounted read-only at /opsloop/tools.py).

    import tools
    print(tools.disk(path="/"))          # a result: str, or dict/list for JSON
    print(tools.disk.__doc__)            # its signature, description and parameters
    tools.docs.search(query="restart")   # a tool of an MCP server: tools.SERVER.TOOL
    tools.docs["read-file"](path="x")    # any tool of a server by its exact name
    tools.list()                         # what this conversation may call
    except tools.ToolError as e: ...     # refused or failed: e.reason, e.refused

Each call is one line of JSON over the run's socket to opsloop's broker, which checks it,
runs the tool on the host and records it. The block's wall limit keeps running meanwhile.
Standard library only: it runs on the jail's own python3.
"""

from __future__ import annotations

import _socket
import _thread
import builtins as _builtins
import json as _json
import keyword as _keyword
import os as _os

TYPE_CHECKING = False  # typing costs milliseconds at every block's start; mypy reads this
if TYPE_CHECKING:
    from typing import Any as _Any
del TYPE_CHECKING, annotations  # noqa: F821  (a tool may be called `annotations`)

_SOCKET = _os.environ.get("OPSLOOP_TOOLS_SOCKET") or "/opsloop/tools.sock"
_MAX_REQUEST = 1024 * 1024
_MAX_ANSWER = 17 * 1024 * 1024
_IDENTIFIER = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class ToolError(Exception):
    """A tool call was refused (``refused``) or failed; the message is the one-line reason."""

    def __init__(self, reason: str, *, refused: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused


class _Channel:
    """One connection to the broker per process, one request at a time."""

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._sock: _socket.socket | None = None
        self._buffer = bytearray()
        self._pid = 0

    def ask(self, frame: dict[str, _Any]) -> dict[str, _Any]:
        line = (_json.dumps(frame, separators=(",", ":"), allow_nan=False) + "\n").encode()
        if len(line) > _MAX_REQUEST:
            raise ToolError("the request is over 1 MiB")
        with self._lock:
            try:
                if self._sock is None or self._pid != _os.getpid():  # a forked child reconnects
                    self._connect()
                answer = self._exchange(line)
            except OSError as exc:
                self._drop()
                raise ToolError(f"the tool channel failed: {exc.strerror or exc}") from None
            if answer is None:
                self._drop()
                raise ToolError("the tool channel closed before answering")
        try:
            value = _json.loads(answer)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise ToolError("the tool channel answered something that is not a JSON object")
        return value

    def _exchange(self, line: bytes) -> bytes | None:
        """Send one request line; its answer line, or None when the channel closed first."""
        assert self._sock is not None
        self._sock.sendall(line)
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > _MAX_ANSWER:
                return None
            chunk = self._sock.recv(65536)
            if not chunk:
                return None
            self._buffer += chunk
        answer = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return answer

    def _connect(self) -> None:
        self._drop()
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.connect(_SOCKET)
        except OSError as exc:
            sock.close()
            raise ToolError(f"cannot reach opsloop's tools at {_SOCKET}: {exc.strerror}") from None
        self._sock, self._pid = sock, _os.getpid()

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._buffer.clear()


_channel = _Channel()
_catalog: dict[str, _Any] | None = None  # name -> tool function or server, from the first list


def list() -> _builtins.list[dict[str, _Any]]:  # noqa: A001  (the documented name)
    """The tools this conversation may call: name, kind, description, signature, schema …"""
    answer = _channel.ask({"op": "list"})
    if not answer.get("ok"):
        raise ToolError(_reason(answer), refused=bool(answer.get("refused")))
    found = answer.get("tools")
    return found if isinstance(found, _builtins.list) else []


def _reason(answer: dict[str, _Any]) -> str:
    return (str(answer.get("error") or "the tool call failed").splitlines() or [""])[0]


def _order(schema: object) -> _builtins.list[str]:
    """Parameters in the signature's order: required ones first (for positional arguments)."""
    properties = _dict(_dict(schema).get("properties"))
    if not properties:
        return []
    schema = _dict(schema)
    required = [p for p in schema.get("required") or [] if p in properties]
    return [*required, *(p for p in properties if p not in required)]


def _bind(name: str, order: _builtins.list[str], args: tuple[_Any, ...], kwargs: dict) -> dict:
    if len(args) > len(order):
        raise TypeError(f"tools.{name} takes at most {len(order)} positional arguments")
    arguments = dict(zip(order, args, strict=False))
    for key, value in kwargs.items():
        if key in arguments:
            raise TypeError(f"tools.{name} got multiple values for {key!r}")
        arguments[key] = value
    return arguments


def _tool(entry: dict[str, _Any], alias: str) -> _Any:
    """A function calling the tool ``entry`` names; its __doc__ tells how."""
    name = str(entry.get("name"))
    order = _order(entry.get("schema"))

    def tool(*args: _Any, **kwargs: _Any) -> _Any:
        try:
            frame = {"op": "call", "tool": name, "arguments": _bind(name, order, args, kwargs)}
            answer = _channel.ask(frame)
        except (TypeError, ValueError) as exc:  # arguments that are not JSON values
            raise TypeError(f"tools.{name}: {exc}") from None
        if not answer.get("ok"):
            raise ToolError(_reason(answer), refused=bool(answer.get("refused"))) from None
        if answer.get("truncated"):
            import warnings  # only now: it costs a millisecond at every start

            warnings.warn(f"tools.{name}: the result was cut at its size cap", stacklevel=2)
        return answer.get("result")

    tool.__name__ = tool.__qualname__ = alias
    tool.__doc__ = _doc(entry)
    return tool


def _dict(value: object) -> dict[str, _Any]:
    return value if isinstance(value, dict) else {}


def _doc(entry: dict[str, _Any]) -> str:
    lines = [str(entry.get("signature") or entry.get("name")), ""]
    lines += [str(entry.get("description") or "(no description)").strip()]
    schema: dict[str, _Any] = _dict(entry.get("schema"))
    properties: dict[str, _Any] = _dict(schema.get("properties"))
    required = schema.get("required") or []
    if properties:
        lines += ["", "Parameters:"]
    for param in _order(schema):
        prop = _dict(properties[param])
        kind = prop.get("type", "any")
        kind = " | ".join(map(str, kind)) if isinstance(kind, _builtins.list) else str(kind)
        if param not in required:
            kind += f", default {_json.dumps(prop.get('default'))}"
        text = f"  {param} ({kind})"
        if prop.get("enum"):
            text += " one of " + ", ".join(_json.dumps(v) for v in prop["enum"])
        if prop.get("description"):
            text += f": {prop['description']}"
        lines.append(text)
    return "\n".join(lines)


def _alias(name: str) -> str | None:
    """The attribute name of a server's tool: non-identifier characters become ``_``, a
    leading digit gets a ``_`` before it, a keyword one after it; a name that would start
    with ``__`` gets none (reach it as ``tools.SERVER["name"]``)."""
    alias = "".join(c if c in _IDENTIFIER else "_" for c in name)
    if not alias or alias[0].isdigit():
        alias = "_" + alias
    if _keyword.iskeyword(alias):
        alias += "_"
    return None if alias.startswith("__") else alias


class _Server:
    """The tools of one MCP server: ``tools.SERVER.TOOL(...)`` or ``tools.SERVER["tool-name"]``."""

    def __init__(self, name: str, entries: _builtins.list[dict[str, _Any]]) -> None:
        self.__name = name
        self.__tools: dict[str, _Any] = {}  # exact name -> function
        claims: dict[str, _builtins.list[str]] = {}
        for entry in entries:
            tool = str(entry.get("name")).partition(".")[2]
            alias = _alias(tool) or ""
            self.__tools[tool] = _tool(entry, alias or tool)
            claims.setdefault(alias, []).append(tool)
        # A tool whose name is already its alias keeps it; an alias two others would share
        # goes to neither (both stay reachable by their exact name).
        self.__aliases = {
            alias: (alias if alias in names else names[0])
            for alias, names in claims.items()
            if alias and (alias in names or len(names) == 1)
        }
        described = next((e.get("server_description") for e in entries), "") or ""
        listing = "\n".join(f"  {f.__doc__.splitlines()[0]}" for f in self.__tools.values())
        self.__doc__ = f"MCP server {name}: {described}".strip() + f"\n\nTools:\n{listing}"

    def __getattr__(self, attribute: str) -> _Any:
        aliases = self.__dict__.get("_Server__aliases", {})  # never recurse, even half-built
        if attribute.startswith("__") or attribute not in aliases:
            known = ", ".join(sorted(aliases)) or "none"
            server = self.__dict__.get("_Server__name", "?")
            raise AttributeError(f"tools.{server} has no tool {attribute!r} (tools: {known})")
        return self.__tools[aliases[attribute]]

    def __getitem__(self, tool: str) -> _Any:
        if tool not in self.__tools:
            raise KeyError(f"tools.{self.__name} has no tool {tool!r}")
        return self.__tools[tool]

    def __dir__(self) -> _builtins.list[str]:
        return sorted(self.__aliases)

    def __repr__(self) -> str:
        return f"<tools of MCP server {self.__name}: {', '.join(sorted(self.__tools))}>"


def _load() -> dict[str, _Any]:
    global _catalog
    if _catalog is None:
        servers: dict[str, _builtins.list[dict[str, _Any]]] = {}
        catalog: dict[str, _Any] = {}
        for entry in list():
            if not isinstance(entry, dict):
                continue
            if entry.get("server"):
                servers.setdefault(str(entry["server"]), []).append(entry)
            else:
                catalog[str(entry.get("name"))] = _tool(entry, str(entry.get("name")))
        catalog.update({name: _Server(name, found) for name, found in servers.items()})
        _catalog = catalog
    return _catalog


def __getattr__(name: str) -> _Any:
    if name.startswith("__"):  # the import system's questions, never a tool
        raise AttributeError(name)
    catalog = _load()
    if name not in catalog:
        known = ", ".join(sorted(catalog)) or "none"
        raise AttributeError(f"no tool {name!r} in this conversation (tools: {known})")
    return catalog[name]


def __dir__() -> _builtins.list[str]:
    return ["ToolError", "list", *sorted(_load())]
