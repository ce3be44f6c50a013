"""Running ``opsloop demo``: its own SQLite file, the real sandbox, the terminal, the replay.

The demo never touches the operator's event store: it writes ``demo.sqlite3`` in the data
directory (fresh each run unless ``--keep``), so a first-time user can run it with no
configuration and replay it afterwards with the command it prints.
"""

from __future__ import annotations

import getpass
import os
import tempfile
import uuid
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.rule import Rule
from rich.text import Text

from bot.surface import Coordinates, Incoming, Outcome
from bot.visible import visible
from domain.state import block_failed

if TYPE_CHECKING:
    from bot.config import Policy
    from bot.loop.service import OpsloopService
    from bot.ports import Progress
    from bot.settings import Settings

DEMO_DB = "demo.sqlite3"


async def run_demo(
    *,
    settings: Settings,
    policy: Policy,
    console: Console,
    progress: Progress,
    keep: bool = False,
) -> Outcome:
    """Play the demo conversation end to end, showing it through ``progress``, then its replay."""
    from bot.app.application import open_app
    from bot.cli.bootstrap import build_service, make_sandbox
    from bot.cli.demo import demo_model
    from bot.cli.sandboxing import release_workspaces
    from sandbox import tree

    url = _fresh_store(settings, keep=keep)
    question, model = demo_model()
    # The demo's workspace is throw-away and must be reachable by the jail user (nobody),
    # which a data directory under /root is not: a world-searchable temp dir always is.
    scratch = tempfile.mkdtemp(prefix="opsloop-demo-")
    os.chmod(scratch, 0o755)
    sandbox_policy = policy.sandbox.model_copy(update={"workspace_root": scratch})
    policy = policy.model_copy(update={"sandbox": sandbox_policy})
    sandbox = make_sandbox(settings=settings, policy=policy)  # nsjail unless configured otherwise
    service = build_service(
        settings=settings,
        policy=policy,
        model=model,
        sandbox=sandbox,
        app=open_app(database_url=url),
    )
    try:
        console.print(Rule("opsloop demo"))
        console.print(
            f"[dim]event store {url} · sandbox {settings.sandbox} · model {model.name} "
            "(scripted: its final turn quotes what the sandbox printed)[/dim]\n"
        )
        return await _play(service, question=question, url=url, console=console, progress=progress)
    finally:
        await service.aclose()
        release_workspaces(sandbox)
        tree.remove_path(scratch, budget=tree.Budget(seconds=30))


def _fresh_store(settings: Settings, *, keep: bool) -> str:
    """The demo's own SQLite file, emptied first unless ``keep``."""
    path = settings.data_dir / DEMO_DB
    path.parent.mkdir(parents=True, exist_ok=True)
    if not keep:
        for leftover in (path, path.with_name(DEMO_DB + "-wal"), path.with_name(DEMO_DB + "-shm")):
            leftover.unlink(missing_ok=True)
    return f"sqlite:///{path}"


async def _play(
    service: OpsloopService, *, question: str, url: str, console: Console, progress: Progress
) -> Outcome:
    """Ask the demo question, run its loop, then print its replay and how to see it again."""
    from bot.audit.replay import render

    coordinates = Coordinates(
        platform="terminal", workspace="demo", channel=getpass.getuser(), thread=uuid.uuid4().hex
    )
    console.print(Text.assemble(("you>", "bold"), " ", visible(question)))
    incoming = Incoming(
        coordinates=coordinates,
        message_key=f"demo-{uuid.uuid4()}",
        author=getpass.getuser(),
        text=question,
    )
    receipt = await service.receive(incoming)
    outcome = await service.run(receipt.conversation_id, progress)
    timeline = await service.timeline(receipt.conversation_id)
    console.print(Rule("replay: every step, as recorded in the event log"))
    for line in render(timeline, fmt="text"):
        console.print(Text(line))
    console.print(Rule())
    console.print(
        f"Replay it again: OPSLOOP_DATABASE_URL={url} opsloop replay "
        f"{receipt.conversation_id[:8]}\n"
        f"Verify its hash chain: OPSLOOP_DATABASE_URL={url} opsloop audit verify"
    )
    if all_blocks_succeeded(timeline):
        return outcome
    console.print(
        "[red]Some blocks did not run in the sandbox; `opsloop doctor` says why and "
        "how to fix it.[/red]"
    )
    return Outcome(
        conversation_id=outcome.conversation_id,
        answer=None,
        stopped_reason="sandbox",
        detail="a demo block did not run",
    )


def all_blocks_succeeded(timeline: list[dict[str, Any]]) -> bool:
    """Every started block finished with exit 0 and nothing was refused or skipped."""
    started = [e for e in timeline if e["type"] == "BlockStarted"]
    finished = [
        e
        for e in timeline
        if e["type"] == "BlockFinished"
        and not block_failed(
            exit_code=e.get("exit_code"),
            signal=e.get("signal"),
            timed_out=bool(e.get("timed_out")),
            memory_exceeded=bool(e.get("memory_exceeded")),
        )
    ]
    others = [
        e for e in timeline if e["type"] in ("BlockRefused", "BlockSkipped", "BlockOutcomeUnknown")
    ]
    return bool(started) and len(started) == len(finished) and not others
