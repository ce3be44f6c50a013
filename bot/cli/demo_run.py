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

if TYPE_CHECKING:
    from bot.config import Policy
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
    from bot.audit.replay import render
    from bot.cli.bootstrap import build_service, make_sandbox
    from bot.cli.demo import demo_model
    from bot.cli.sandboxing import release_workspaces
    from sandbox import tree

    path = settings.data_dir / DEMO_DB
    path.parent.mkdir(parents=True, exist_ok=True)
    if not keep:
        for leftover in (path, path.with_name(DEMO_DB + "-wal"), path.with_name(DEMO_DB + "-shm")):
            leftover.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
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
        coordinates = Coordinates(
            platform="terminal",
            workspace="demo",
            channel=getpass.getuser(),
            thread=uuid.uuid4().hex,
        )
        console.print(Rule("opsloop demo"))
        console.print(
            f"[dim]event store {url} · sandbox {settings.sandbox} · model {model.name} "
            "(scripted: its final turn quotes what the sandbox printed)[/dim]\n"
        )
        console.print(Text.assemble(("you>", "bold"), " ", visible(question)))
        receipt = await service.receive(
            Incoming(
                coordinates=coordinates,
                message_key=f"demo-{uuid.uuid4()}",
                author=getpass.getuser(),
                text=question,
            )
        )
        outcome = await service.run(receipt.conversation_id, progress)
        console.print(Rule("replay: every step, as recorded in the event log"))
        for line in render(await service.timeline(receipt.conversation_id), fmt="text"):
            console.print(Text(line))
        console.print(Rule())
        console.print(
            f"Replay it again: OPSLOOP_DATABASE_URL={url} opsloop replay "
            f"{receipt.conversation_id[:8]}\n"
            f"Verify its hash chain: OPSLOOP_DATABASE_URL={url} opsloop audit verify"
        )
        timeline = await service.timeline(receipt.conversation_id)
        if not all_blocks_succeeded(timeline):
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
        return outcome
    finally:
        await service.aclose()
        release_workspaces(sandbox)
        tree.remove_path(scratch, budget=tree.Budget(seconds=30))


def all_blocks_succeeded(timeline: list[dict[str, Any]]) -> bool:
    """Every started block finished with exit 0 and nothing was refused or skipped."""
    started = [e for e in timeline if e["type"] == "BlockStarted"]
    finished = [e for e in timeline if e["type"] == "BlockFinished" and e.get("exit_code") == 0]
    others = [
        e for e in timeline if e["type"] in ("BlockRefused", "BlockSkipped", "BlockOutcomeUnknown")
    ]
    return bool(started) and len(started) == len(finished) and not others
