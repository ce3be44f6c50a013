# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
"""No secret reaches chat, the model or the log: a whole conversation through the Slack surface.

A tool prints the secret it holds (``printenv``, which the broker redacts), another prints it
in a form no redactor knows (a comma after every character), which the block decodes and
prints again raw, as base64 split across two prints, as hex, URL-encoded and reversed. The
model was told the secret too: its prose says it, its code assigns it and prints it, and its
answer repeats it. Then the secret must appear in no Slack Web API call, no upload, no prompt
the model received, no stored event, and no byte of the raw SQLite file or of the PostgreSQL
tables, in any of those forms.

Real parts: the Slack surface on loopback against the Web API stand-in, signed Events API
requests, the service from ``bot.cli.bootstrap.build_service`` (its redactor, tools, prompt
builder and store), host commands for the tools, SQLite and PostgreSQL, and the real nsjail
sandbox with its tool channel (``sandbox.relay``). The same conversation also runs on a jail
stand-in that runs the recorded code in this process (Python, in a worker thread) and sends
the broker the frames the jail's ``tools`` module sends, so the test needs no namespaces.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import io
import re
import traceback
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus
from uuid import UUID, uuid4

import pytest

from bot.cli.bootstrap import build_service
from bot.config import Policy
from bot.settings import Settings
from bot.surface import Command, CommandName, Coordinates, Incoming
from sandbox.result import RunResult
from tests.integration.sandbox_fixtures import data_dir, default_jail, workspaces  # noqa: F401
from tests.port_fakes import WatchedModel
from tests.slack_harness import running_bot
from tests.slack_standin import TEAM, envelope, mention

SECRET = "s3cr3t-Tok3n/4+opsloop-e2e"  # '/' and '+' so URL and base64url forms differ
VAR = "OPSLOOP_E2E_TOKEN"
MARKER = f"[redacted:{VAR}]"
B64 = base64.b64encode(SECRET.encode()).decode()
TOOLS: dict[str, Any] = {
    "whoami_token": {
        "kind": "command",
        "description": "Print the token this tool holds.",
        "argv": ["printenv", "TOKEN"],
        "env": {"TOKEN": f"${{env:{VAR}}}"},
    },
    "spelled_token": {
        "kind": "command",
        "description": "Print the token with a comma after every character.",
        "argv": ["sh", "-c", "printenv TOKEN | sed 's/./&,/g'"],
        "env": {"TOKEN": f"${{env:{VAR}}}"},
    },
}
BLOCK = f"""\
import base64, urllib.parse
import tools
print("raw:", tools.whoami_token().strip())
told = "{SECRET}"
print("told:", told)
spelled = tools.spelled_token().replace(",", "").strip()
print(spelled)
b = base64.b64encode(spelled.encode()).decode()
print(b[:11])
print(b[11:])
print(spelled.encode().hex(), urllib.parse.quote(spelled, safe=""), spelled[::-1])
"""
TURNS = [
    f"I was told the token is {SECRET}; let me check what the tools say.\n"
    f"<helpers>\n{BLOCK}</helpers>",
    f"The token is {SECRET} (base64 {B64}).",
]


def forms(secret: str) -> list[str]:
    """The secret as a reader could recover it: itself and the usual encodings."""
    raw = secret.encode()
    found = [secret, secret[::-1], quote(secret, safe=""), quote_plus(secret)]
    found += [raw.hex(), raw.hex().upper()]
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for offset in range(3):  # inside a longer base64 stream, at each alignment
            stream = encode(b"\0" * offset + raw).decode()
            found.append(stream[-(-8 * offset // 6) : (8 * offset + 8 * len(raw)) // 6])
    return found


def leaks(text: str) -> list[str]:
    """The forms of the secret in ``text`` or in ``text`` without whitespace."""
    squeezed = re.sub(r"\s", "", text)
    return [form for form in forms(SECRET) if form in text or form in squeezed]


def byte_leaks(data: bytes) -> list[str]:
    """The forms of the secret in raw bytes (as stored, or as a dump writes bytea: hex)."""
    return [form for form in forms(SECRET) if form.encode() in data]


class ExecJail:
    """A ``Sandbox`` whose block really runs: the code exactly as recorded, with a ``tools``
    module that sends the broker's relay the frames the jail's module would."""

    def __init__(self) -> None:
        self.printed: list[str] = []  # what the blocks printed, before any redaction

    async def run(self, *, language: str, code: str, tools: Any, **_: Any) -> RunResult:
        assert language == "python" and tools is not None
        loop = asyncio.get_running_loop()

        def call(frame: dict[str, Any]) -> dict[str, Any]:
            return asyncio.run_coroutine_threadsafe(tools(frame), loop).result(timeout=60)

        stdout, stderr, status = await asyncio.to_thread(execute, code, call)
        self.printed.append(stdout)
        return RunResult(exit_code=status, signal=None, stdout=stdout, stderr=stderr, duration_ms=1)


def execute(code: str, call: Callable[[dict[str, Any]], dict[str, Any]]) -> tuple[str, str, int]:
    """Run ``code`` with its own ``print`` and ``tools``; (stdout, stderr, exit status)."""
    out = io.StringIO()
    module = types.ModuleType("tools")

    def tool(name: str) -> Callable[..., Any]:
        def invoke(**arguments: Any) -> Any:
            answer = call({"op": "call", "tool": name, "arguments": arguments})
            if not answer.get("ok"):
                raise RuntimeError(answer.get("error"))
            return answer["result"]

        return invoke

    module.__getattr__ = tool  # type: ignore[method-assign]
    real_import = builtins.__import__

    def importer(name: str, *args: Any, **kwargs: Any) -> Any:
        return module if name == "tools" else real_import(name, *args, **kwargs)

    def printer(*args: Any, **kwargs: Any) -> None:
        print(*args, **{**kwargs, "file": out})

    names = {"__builtins__": {**vars(builtins), "__import__": importer, "print": printer}}
    try:
        exec(compile(code, "<block>", "exec"), names)  # noqa: S102 - the jail's stand-in
    except Exception:
        return out.getvalue(), traceback.format_exc(), 1
    return out.getvalue(), "", 0


class Watched:
    """The real nsjail sandbox, keeping what each block printed before any redaction."""

    def __init__(self, jail: Any) -> None:
        self.jail = jail
        self.printed: list[str] = []

    async def run(self, **given: Any) -> RunResult:
        result: RunResult = await self.jail.run(**given)
        self.printed.append(result.stdout + result.stderr)
        return result

    async def read_outbox(self, **given: Any) -> Any:
        return await self.jail.read_outbox(**given)


@pytest.fixture(params=["stand-in", pytest.param("nsjail", marks=pytest.mark.nsjail)])
def sandbox(request: pytest.FixtureRequest) -> Any:
    """The jail stand-in, or the real nsjail sandbox (skips on a laptop, fails in CI)."""
    if request.param == "stand-in":
        return ExecJail()
    return Watched(request.getfixturevalue("default_jail"))


@pytest.fixture
def tmp_path(jail_reachable_dir: Path) -> Path:
    """Overrides pytest's: the jail user must reach the sandbox workspaces inside it."""
    return jail_reachable_dir


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store of each kind (PostgreSQL: a database of its own)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/opsloop.sqlite3"
        return
    import psycopg

    base = request.getfixturevalue("postgres_url")
    name = f"opsloop_e2e_{uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield base.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def stored_bytes(database_url: str) -> bytes:
    """Every byte the store holds: the SQLite file and its WAL, or every PostgreSQL table
    as ``COPY`` writes it and as its rows' raw values."""
    if database_url.startswith("sqlite:"):
        path = Path(database_url[len("sqlite:///") :])
        files = [path, path.with_name(path.name + "-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    import psycopg

    dump = bytearray()
    with psycopg.connect(database_url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        assert any(name == "opsloop_events" for _, name in tables), tables
        for schema, name in tables:
            table = f'"{schema}"."{name}"'
            with conn.cursor().copy(f"COPY {table} TO STDOUT") as copy:
                for data in copy:
                    dump += bytes(data)
            for row in conn.execute(f"SELECT * FROM {table}").fetchall():
                for value in row:
                    dump += value if isinstance(value, bytes) else str(value).encode()
    return bytes(dump)


async def test_a_secret_a_tool_used_reaches_no_chat_message_prompt_or_stored_byte(
    database_url: str, sandbox: ExecJail | Watched, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VAR, SECRET)
    model = WatchedModel(TURNS)  # streams its replies in 16-character chunks
    jail = sandbox
    service = build_service(
        settings=Settings(database_url=database_url),
        policy=Policy.model_validate({"tools": TOOLS}),
        model=model,
        sandbox=jail,
    )
    async with running_bot(service) as bot:
        text = f"is the deploy token {SECRET} still valid?"
        await bot.events.send(envelope(mention(channel="C1", ts="500.1", text=text), event_id="E1"))
        await bot.slack.wait_for(
            lambda: "white_check_mark" in bot.slack.reactions("C1", "500.1"), timeout=60
        )
        await bot.surface.idle()
        thread = Coordinates(platform="slack", workspace=TEAM, channel="C1", thread="500.1")
        cid = await service.current_conversation(thread)
        replay = await service.handle(
            Command(CommandName.REPLAY, Incoming(thread, "C1/500.2", "U0ALICE", "replay"))
        )
        posted = [repr(c.params) for c in bot.slack.calls] + [
            data.decode(errors="replace") for data in bot.slack.uploads.values()
        ]
    timeline = service.app.timeline(UUID(cid))  # as stored, not as the service shows it
    prompts = "\n".join(m.content for prompt in model.prompts for m in prompt)
    await service.aclose()

    assert SECRET in jail.printed[0]  # the block did get it and print it, decoded in the jail
    assert leaks("\n".join(posted)) == []  # every Slack call and upload
    assert leaks(repr(replay.timeline)) == [] and leaks(prompts) == []
    assert leaks(repr(timeline)) == []
    stored = stored_bytes(database_url)
    assert MARKER.encode() in stored and byte_leaks(stored) == []  # it reads the events' text
    assert MARKER in bot.slack.thread_text("C1", "500.1")  # redacted, not left out
    assert bot.slack.streams_in("C1", "500.1")[-1] == f"The token is {MARKER} (base64 {MARKER})."
    finished = next(e for e in timeline if e["type"] == "BlockFinished")
    assert finished["exit_code"] == 0 and finished["redacted"] == {"stdout": [VAR]}
    # raw (from the broker), told, decoded; base64 over two prints is one span; hex, url, reversed
    assert finished["stdout"] == f"raw: {MARKER}\ntold: {MARKER}\n{MARKER}\n{MARKER}\n" + (
        f"{MARKER} {MARKER} {MARKER}\n"
    )
