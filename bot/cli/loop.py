"""The loop's commands: ``opsloop chat``, ``ask``, ``demo``, ``resume`` and ``doctor``.

Each command loads settings and ``opsloop.toml``, builds the service in ``bot.cli.bootstrap``
and runs one asyncio event loop. Errors of opsloop's own reach ``bot.cli.main``, which prints
them as one line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.options import CreateOpt, ModelOpt, ProviderOpt

if TYPE_CHECKING:
    from rich.console import Console

    from bot.loop.service import OpsloopService


TERMINAL_PLATFORMS = ("terminal", "cli")  # whose answers belong in this terminal


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command("chat")(chat)
    app.command("ask")(ask)
    app.command("demo")(demo)
    app.command("resume")(resume)
    app.command("doctor")(doctor)


def chat(
    provider: ProviderOpt = None,
    model: ModelOpt = None,
    new: Annotated[bool, typer.Option("--new", help="Start a fresh conversation.")] = False,
    create: CreateOpt = False,
) -> None:
    """Chat with opsloop in this terminal (resumes interrupted loops first)."""
    from rich.console import Console

    from adapters.terminal.repl import ChatRepl
    from bot.cli.bootstrap import chat_service

    console = Console(highlight=False)

    async def main() -> None:
        async with chat_service(provider=provider, model=model, create=create) as (
            service,
            settings,
        ):
            history = settings.data_dir / "chat_history"
            repl = ChatRepl(
                service=service,
                console=console,
                history_file=history,
                files_dir=settings.data_dir / "files",
                model_name=service.model_name,
                fresh=new,
            )
            await repl.run()

    asyncio.run(main())


_FileOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--file",
        help="Attach a file (repeatable): saved in /workspace/inbox/ before the loop runs.",
    ),
]


def ask(
    text: Annotated[str, typer.Argument(help="The question.")],
    conversation: Annotated[
        str | None,
        typer.Option("--conversation", "-c", help="Continue this conversation (id or prefix)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object instead.")] = False,
    provider: ProviderOpt = None,
    model: ModelOpt = None,
    approve: Annotated[
        bool,
        typer.Option("--approve", help="Approve, as yourself, every block that needs approval."),
    ] = False,
    file: _FileOpt = None,
    create: CreateOpt = False,
) -> None:
    """Ask once and print the answer; exit 1 when the loop stopped without one.

    Files a block writes to /workspace/outbox/ are saved under the data directory
    (files/<conversation id>/) and their paths printed on stderr."""
    from bot.cli.bootstrap import chat_service
    from bot.cli.oneshot import ask_once
    from bot.visible import visible, visible_json

    async def main() -> dict[str, object]:
        async with chat_service(provider=provider, model=model, create=create) as (
            service,
            settings,
        ):
            return await ask_once(
                service,
                text=text,
                conversation=conversation,
                approve=approve,
                files=file or (),
                files_dir=settings.data_dir / "files",
            )

    result = asyncio.run(main())
    _say_refused_approvals(result)
    _say_files(result)
    if as_json:
        print(visible_json(json.dumps(result, ensure_ascii=False)))
    elif result["answer"] is not None:
        print(visible(str(result["answer"])))
    if result["answer"] is None:
        if not as_json:
            print(
                visible(
                    f"opsloop: stopped without an answer ({result['stopped_reason']}): "
                    f"{result.get('detail', '')}"
                ),
                file=sys.stderr,
            )
        raise typer.Exit(1)


def _say_files(result: dict[str, Any]) -> None:
    """One line on stderr per file refused, saved from the outbox, or left in it."""
    from bot.visible import visible

    lines = [f"file {f['name']} not attached: {f['refused']}" for f in result["files_in"]]
    lines = [line for line, f in zip(lines, result["files_in"], strict=True) if f["refused"]]
    lines += [f"file {f['name']} ({f['bytes']} bytes): {f['path']}" for f in result["files"]]
    lines += [f"not sent from /workspace/outbox: {s}" for s in result["files_skipped"]]
    for line in lines:
        print(visible(f"opsloop: {line}"), file=sys.stderr)


def _say_refused_approvals(result: dict[str, Any]) -> None:
    """One line on stderr per block refused for want of ``--approve``."""
    from bot.visible import visible

    for entry in result.get("approvals", []):
        if entry["decision"] == "denied":
            tools = ", ".join(entry["tools"]) or "no tools"
            print(
                visible(
                    f"opsloop: block {entry['block_id']} needs approval ({tools}) and was not "
                    "run; run again with --approve to run such blocks"
                ),
                file=sys.stderr,
            )


def demo(
    keep: Annotated[
        bool,
        typer.Option(
            "--keep/--fresh",
            hidden=True,  # the demo no longer has a database of its own; still accepted
            help="No effect (the demo records in the event store).",
        ),
    ] = False,
) -> None:
    """Run a built-in scripted conversation in the event store and nsjail, then print its
    replay and what to run next."""
    from rich.console import Console

    from adapters.terminal.progress import TerminalProgress
    from bot.cli.bootstrap import load_settings
    from bot.cli.demo_run import run_demo

    settings, policy = load_settings()
    console = Console(highlight=False)
    outcome = asyncio.run(
        run_demo(
            settings=settings,
            policy=policy,
            console=console,
            progress=TerminalProgress(console),
            keep=keep,
        )
    )
    if outcome.answer is None:
        raise typer.Exit(1)


def resume(
    conversation: Annotated[
        str | None,
        typer.Argument(help="Conversation id or prefix (default: every interrupted one)."),
    ] = None,
    provider: ProviderOpt = None,
    model: ModelOpt = None,
) -> None:
    """Continue loops a killed process left open (or retry one that stopped for its model)."""
    from rich.console import Console

    from adapters.terminal.progress import TerminalProgress
    from adapters.terminal.repl import run_with_ctrl_c
    from bot.cli.bootstrap import chat_service

    console = Console(highlight=False)

    async def main() -> int:
        async with chat_service(provider=provider, model=model) as (service, _):
            targets = await _resume_targets(service, conversation=conversation, console=console)
            if not targets:
                console.print("nothing to resume here: no terminal conversation was interrupted")
                return 0
            unanswered = 0
            for cid in targets:
                console.print(f"[dim]resuming conversation {cid}[/dim]")
                outcome = await run_with_ctrl_c(
                    service=service, conversation_id=cid, progress=TerminalProgress(console)
                )
                if outcome.answer is None and outcome.stopped_reason is None:
                    console.print(f"conversation {cid[:8]} has nothing to resume")
                elif outcome.answer is None:
                    unanswered += 1
            return 1 if unanswered else 0

    status = asyncio.run(main())
    if status:
        raise typer.Exit(status)


async def _resume_targets(
    service: OpsloopService, *, conversation: str | None, console: Console
) -> list[str]:
    """The conversation named (retried if its model was down), or every interrupted terminal
    one; the others' platforms are named, since their own surface resumes them."""
    from rich.text import Text

    from bot.visible import visible

    if conversation is not None:
        cid = str(await service.resolve(conversation))
        await service.reopen_if_model_failed(cid)
        return [cid]
    await _wait_for_leases(service, console=console)
    found = await service.interrupted()
    elsewhere = [c.platform for _, c in found if c.platform not in TERMINAL_PLATFORMS]
    for platform in sorted(set(elsewhere)):
        note = (
            f"{elsewhere.count(platform)} interrupted {platform} conversation(s) resume when "
            f"`opsloop serve {platform}` starts (or name one here)"
        )
        console.print(Text(visible(note)))  # the platform's name comes from the store
    return [cid for cid, c in found if c.platform in TERMINAL_PLATFORMS]


async def _wait_for_leases(service: OpsloopService, *, console: Console) -> None:
    """Wait (up to a lease and a little) while another process holds the loop of an open
    terminal conversation: a holder killed mid-loop keeps its lease until it expires, and
    then this process takes the loop over (docs/replicas.md)."""
    from rich.text import Text

    from bot.visible import visible

    deadline = time.monotonic() + service.runner.lease.seconds + 5
    told = False
    while time.monotonic() < deadline:
        held = await asyncio.to_thread(service.app.held_loops)
        mine = [
            (cid, held[cid])
            for cid, c in await asyncio.to_thread(service.app.open_conversations)
            if c.platform in TERMINAL_PLATFORMS and cid in held
        ]
        if not mine:
            return
        if not told:
            cid, holder = mine[0]
            note = (
                f"conversation {str(cid)[:8]}'s loop is held by {holder}; waiting for its "
                f"lease to expire (at most {service.runner.lease.seconds:g} s)"
            )
            console.print(Text(visible(note)))
            told = True
        await asyncio.sleep(1.0)


def doctor(provider: ProviderOpt = None, model: ModelOpt = None) -> None:
    """Check the sandbox, the event store, the model and the tools; each problem with its fix."""
    from bot.app.store import describe
    from bot.cli.bootstrap import load_settings, open_app
    from bot.cli.doctor import (
        check_bounds,
        check_model,
        check_sandbox,
        check_store,
        check_tools,
        render,
    )
    from bot.prompt.context import context_tokens_for
    from bot.providers import make_model

    settings, policy = load_settings()
    url = settings.resolved_database_url()

    def built() -> Any:
        return make_model(settings=settings, policy=policy, provider=provider, model=model)

    chosen = (provider or settings.provider).partition(":")[0]
    checks = [
        asyncio.run(check_sandbox(settings=settings, policy=policy)),
        check_store(open_app=lambda: open_app(settings), url=describe(url)),
        asyncio.run(check_model(make_model=built, provider=chosen)),
        *asyncio.run(check_tools(policy=policy)),
    ]
    if checks[2].ok:  # the heartbeat answered: ask about the bounds too
        name = checks[2].detail.split(" ", 1)[0]
        window = context_tokens_for(
            policy.prompt.context_tokens, provider=chosen, model=name.partition(":")[2]
        )
        bounds = asyncio.run(check_bounds(make_model=built, configured_context=window))
        checks += [bounds] if bounds is not None else []
    print(render(checks))
    if not all(c.ok for c in checks):
        raise typer.Exit(1)
