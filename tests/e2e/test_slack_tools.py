"""Issue 11's "done when", in Slack: with the example config's tools (one of each kind, taken
from deploy/opsloop.example.toml and pointed at loopback stand-ins), a user asks "how full are
the disks on this host, and what does the status API say about api?" and the block that
answers it calls the real ``df`` and the status API through the broker, in the real nsjail.

Real parts: the Slack surface in HTTP mode with signed events against the Web API stand-in,
the service from ``build_chat_service`` (SQLite file, nsjail, the scripted model), a status
API on loopback that wants the secret bearer token, the MCP stand-in over stdio.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from bot.config import Policy
from bot.surface import Coordinates
from tests.conftest import require_real
from tests.integration.test_tools_http import TOKEN, StatusApi
from tests.integration.tools_setup import PY, STANDIN
from tests.slack_harness import running_bot
from tests.slack_standin import TEAM, envelope, mention

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "opsloop.example.toml"
QUESTION = "how full are the disks on this host, and what does the status API say about `api`?"
SCRIPT = """\
turns:
  - |
    I will ask the host and the status API.
    <helpers>
    import tools
    print(tools.disk(path="/"))
    print("api:", tools.status(service="api")["status"])
    </helpers>
  - The disks have room and the status API says api is ok.
"""


def example_tools(status_base: str) -> dict[str, object]:
    """The example config's commented-out tools, uncommented, aimed at the stand-ins."""
    text = EXAMPLE.read_text(encoding="utf-8")
    start = text.index("# [tools.disk]")
    lines = []
    for line in text[start:].splitlines():
        if not line.startswith("#"):
            break
        body = line[2:] if line.startswith("# ") else ""
        if not body.startswith("#"):  # "# # enum = …" stays a comment
            lines.append(body)
    toml = "\n".join(lines)
    toml = re.sub(r'url = "https://status\.example\.com[^"]*"', "", toml)
    toml = toml.replace(
        "[tools.status]", f'[tools.status]\nurl = "{status_base}/v1/services/{{service}}"', 1
    )
    toml = re.sub(r"command = \[[^\]]*\]", f"command = {json.dumps([PY, STANDIN, 'stdio'])}", toml)
    return tomllib.loads(toml)


@pytest.fixture
def tmp_path(jail_reachable_dir: Path) -> Path:
    """The jail user must reach the sandbox workspaces inside it."""
    return jail_reachable_dir


async def test_a_slack_user_gets_an_answer_computed_from_real_tool_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli.bootstrap import build_chat_service
    from bot.settings import Settings
    from sandbox.check import diagnose

    diagnosis = await diagnose()
    require_real(diagnosis.jails_work, f"nsjail cannot run here: {diagnosis.problems}")
    api = StatusApi()
    await api.start()
    monkeypatch.setenv("STATUS_API_TOKEN", TOKEN)
    policy = Policy.model_validate(example_tools(api.base))
    assert set(policy.tools.declared) == {"disk", "status", "docs"}
    (tmp_path / "data").mkdir()
    (tmp_path / "script.yaml").write_text(SCRIPT, encoding="utf-8")
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'data' / 'opsloop.sqlite3'}",
        provider="scripted",
        model=str(tmp_path / "script.yaml"),
        sandbox="nsjail",
    )
    service = build_chat_service(settings=settings, policy=policy)
    try:
        async with running_bot(service) as bot:
            await bot.events.send(
                envelope(mention(channel="C1", ts="300.1", text=QUESTION), event_id="Ev1")
            )
            await bot.slack.wait_for(
                lambda: "white_check_mark" in bot.slack.reactions("C1", "300.1"), timeout=60
            )
            shown = bot.slack.thread_text("C1", "300.1")
            posted = json.dumps([c.params for c in bot.slack.posts_in("C1", "300.1")])
        cid = await service.current_conversation(Coordinates("slack", TEAM, "C1", "300.1"))
        timeline = await service.timeline(cid)
    finally:
        await service.aclose()  # type: ignore[attr-defined]
        await api.stop()

    assert "Filesystem" in posted and "api: ok" in posted  # df and the API, via nsjail
    assert "The disks have room and the status API says api is ok." in shown
    calls = [(e["tool"], e["arguments"]) for e in timeline if e["type"] == "ToolCalled"]
    assert calls == [("disk", {"path": "/"}), ("status", {"service": "api"})]
    assert all(e["ok"] for e in timeline if e["type"] == "ToolReturned")
    assert [r.headers["Authorization"] for r in api.seen] == [f"Bearer {TOKEN}"]
    assert TOKEN not in posted and TOKEN not in json.dumps(timeline)
