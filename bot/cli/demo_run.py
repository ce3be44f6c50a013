"""Running ``opsloop demo``: the event store, the real sandbox, the terminal, the replay.

The demo records its conversation in the operator's own event store (the default SQLite file
in the data directory, or ``OPSLOOP_DATABASE_URL``), so the commands it prints next
(``opsloop replay``, ``audit verify``, ``conversations``) find it as printed. Its workspace is
throw-away. The hints name the ``opsloop`` that ran, and say how to put it on PATH when the
shell would not find it (``bot.cli.hints``).
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

from bot.cli.hints import next_steps
from bot.surface import Coordinates, Incoming, Outcome
from bot.visible import visible
from domain.state import block_failed

if TYPE_CHECKING:
    from bot.config import Policy
    from bot.loop.service import OpsloopService
    from bot.ports import Progress
    from bot.settings import Settings


async def run_demo(
    *,
    settings: Settings,
    policy: Policy,
    console: Console,
    progress: Progress,
    keep: bool = False,
) -> Outcome:
    """Play the demo conversation end to end, showing it through ``progress``, then its replay."""
    from bot.cli.bootstrap import build_service, make_sandbox
    from bot.cli.demo import demo_model
    from bot.cli.sandboxing import release_workspaces
    from sandbox import tree

    del keep  # --keep/--fresh: accepted, no longer needed (the demo uses the event store)
    url = settings.resolved_database_url()
    question, model = demo_model()
    # The demo's workspace is throw-away and must be reachable by the jail user (nobody),
    # which a data directory under /root is not: a world-searchable temp dir always is.
    scratch = tempfile.mkdtemp(prefix="opsloop-demo-")
    os.chmod(scratch, 0o755)
    sandbox_policy = policy.sandbox.model_copy(update={"workspace_root": scratch})
    policy = policy.model_copy(update={"sandbox": sandbox_policy})
    sandbox = make_sandbox(settings=settings, policy=policy)  # nsjail unless configured otherwise
    service = build_service(settings=settings, policy=policy, model=model, sandbox=sandbox)
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
    for line in next_steps(receipt.conversation_id[:8]):
        console.print(Text(line), soft_wrap=True)  # never wrapped: each line is pasted whole
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
