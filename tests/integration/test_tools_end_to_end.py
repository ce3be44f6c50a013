"""Tools end to end, as a user runs them: ``opsloop ask`` with the scripted model, a block in
the real nsjail calling one tool of each kind through the broker, on SQLite and PostgreSQL.

Real parts: the console script in a subprocess, nsjail, a host command (``df``), an HTTP
status API on loopback that wants a secret bearer token, the MCP stand-in built with the
``mcp`` SDK over stdio and over streamable HTTP (with its own secret header). The secrets
live in the environment of ``opsloop ask`` only; afterwards the raw bytes of the database
(the SQLite file and its WAL, or every PostgreSQL table) are searched for them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from tests.conftest import require_real
from tests.integration.test_tools_http import TOKEN as STATUS_TOKEN
from tests.integration.test_tools_http import StatusApi
from tests.integration.tools_setup import PY, STANDIN, McpHttpStandin, q

DOCS_TOKEN = "mcp-7c1e0a9b44d2f8e6"
QUESTION = "how full are the disks on this host, and what does the status API say about api?"
BLOCK = """
Let me look.
<helpers>
import tools
print(tools.disk(path="/"))
print(tools.status(service="api")["status"])
print("sum", tools.docs.add(a=2, b=3))
print(tools.docs_http.echo(text="via streamable http"))
print(tools.whoami())
</helpers>
"""
ANSWER = "The disks and the api service are fine."


def script() -> str:
    turns = [{"text": BLOCK}, {"text": ANSWER}]
    return "\n".join(f"[[turns]]\ntext = {json.dumps(t['text'])}\n" for t in turns)


def config(status_base: str, docs_url: str) -> str:
    return f"""
[tools.disk]
kind = "command"
description = "Disk usage of one mount point"
argv = ["df", "-h", "--", "{{path}}"]
[tools.disk.params.path]
default = "/"

[tools.status]
kind = "http"
description = "Status of one of our services"
url = {q(status_base + "/v1/services/{service}")}
headers = {{ Authorization = "Bearer ${{env:STATUS_API_TOKEN}}" }}
[tools.status.params.service]
enum = ["api", "db"]

[tools.whoami]
kind = "http"
description = "Which credentials the status API sees (it echoes them back)"
url = {q(status_base + "/echo-auth")}
headers = {{ Authorization = "Bearer ${{env:STATUS_API_TOKEN}}" }}

[tools.docs]
kind = "mcp"
command = [{q(PY)}, {q(STANDIN)}, "stdio"]

[tools.docs_http]
kind = "mcp"
url = {q(docs_url)}
headers = {{ Authorization = "Bearer ${{env:DOCS_MCP_TOKEN}}" }}
"""


@pytest.fixture(scope="module")
def jails_work() -> None:
    from sandbox.check import diagnose_sync

    require_real(diagnose_sync().jails_work, "nsjail cannot run blocks on this host")


@pytest.fixture
async def status_api() -> AsyncIterator[StatusApi]:
    server = StatusApi()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def docs_http() -> Iterator[McpHttpStandin]:
    server = McpHttpStandin(token=DOCS_TOKEN)
    server.start()
    yield server
    server.kill()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, jail_reachable_dir: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{jail_reachable_dir / 'data' / 'opsloop.sqlite3'}"
        return
    import psycopg

    base = request.getfixturevalue("postgres_url")
    name = f"opsloop_t_{uuid4().hex[:16]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield base.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def opsloop(home: Path, database_url: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    env.update(
        OPSLOOP_DATA_DIR=str(home / "data"),
        OPSLOOP_DATABASE_URL=database_url,
        OPSLOOP_PROVIDER="scripted",
        OPSLOOP_MODEL=str(home / "script.toml"),
        STATUS_API_TOKEN=STATUS_TOKEN,
        DOCS_MCP_TOKEN=DOCS_TOKEN,
        COLUMNS="200",
    )
    command = Path(sys.executable).with_name("opsloop")
    process = await asyncio.create_subprocess_exec(
        str(command),
        *args,
        cwd=home,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode(), err.decode()


def raw_store(database_url: str, home: Path) -> bytes:
    """Every byte opsloop stored: the SQLite file and its journal, or every table's rows."""
    if database_url.startswith("sqlite:"):
        data = home / "data"
        return b"".join(p.read_bytes() for p in sorted(data.glob("opsloop.sqlite3*")))
    import psycopg

    with psycopg.connect(database_url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) "
                "FROM information_schema.tables WHERE table_schema NOT IN "
                "('pg_catalog', 'information_schema')"
            )
        ]
        dump = [
            value if isinstance(value, bytes) else str(value).encode()
            for table in tables
            for row in conn.execute(f"SELECT * FROM {table}")
            for value in row  # bytea comes back as the bytes stored
        ]
    return b"\n".join(dump)


def forms(secret: str) -> list[bytes]:
    """The secret as it could sit in the store: raw, base64, hex."""
    raw = secret.encode()
    return [raw, base64.b64encode(raw), raw.hex().encode()]


async def test_a_block_calls_each_kind_of_tool_and_no_secret_reaches_the_store(
    jail_reachable_dir: Path,
    jails_work: None,
    status_api: StatusApi,
    docs_http: McpHttpStandin,
    database_url: str,
) -> None:
    home = jail_reachable_dir
    (home / "script.toml").write_text(script(), encoding="utf-8")
    (home / "opsloop.toml").write_text(config(status_api.base, docs_http.url), encoding="utf-8")

    code, out, err = await opsloop(home, database_url, "ask", "--json", QUESTION)
    assert code == 0, err
    asked = json.loads(out)
    replayed = await opsloop(
        home, database_url, "replay", asked["conversation_id"], "--format", "json"
    )
    timeline = [json.loads(line) for line in replayed[1].splitlines()]
    text = (await opsloop(home, database_url, "replay", asked["conversation_id"]))[1]

    calls = {e["call_id"]: e for e in timeline if e["type"] == "ToolCalled"}
    returned = {e["call_id"]: e for e in timeline if e["type"] == "ToolReturned"}
    assert [c["tool"] for c in calls.values()] == [
        "disk",
        "status",
        "docs.add",
        "docs_http.echo",
        "whoami",
    ]
    assert all(returned[cid]["ok"] for cid in calls), returned
    stdout = next(e for e in timeline if e["type"] == "BlockFinished")["stdout"]
    assert "Filesystem" in stdout and "\nok\n" in stdout
    assert "sum {'result': 5}" in stdout and "{'result': 'via streamable http'}" in stdout
    assert "you sent Bearer [redacted:STATUS_API_TOKEN]" in stdout
    assert asked["answer"] == ANSWER
    assert "tool call t1b1c1 by block t1b1 for " in text and 'disk {"path": "/"}' in text
    assert status_api.seen and all(
        r.headers["Authorization"] == f"Bearer {STATUS_TOKEN}" for r in status_api.seen
    )

    stored = raw_store(database_url, home)
    assert b"via streamable http" in stored  # the search sees what the store holds
    for secret in (STATUS_TOKEN, DOCS_TOKEN):
        leaked = [form for form in forms(secret) if form in stored]
        assert leaked == [], f"{secret} is in the store"
    assert STATUS_TOKEN not in out + err + text


def test_the_example_config_declares_one_tool_of_each_kind_commented_out() -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "opsloop.example.toml"
    text = example.read_text(encoding="utf-8")
    kinds = {
        line.split("=", 1)[1].strip().strip('"')
        for line in text.splitlines()
        if line.startswith("# kind = ")
    }
    assert kinds == {"command", "http", "mcp"}
    assert "# [tools.disk]" in text and "# [tools.status]" in text and "# [tools.docs]" in text
