"""``opsloop chat``: the terminal surface's read-run-show loop.

It only translates: a typed line becomes an ``Incoming`` (or a slash command, a
``bot.surface.Command``), and the loop's progress is drawn by ``adapters.terminal.progress``.
Ctrl-C while a loop runs stops that loop (recorded as cancelled); it never kills the program.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, assert_never

from rich.console import Console
from rich.text import Text

from adapters.terminal.files import local_attachment, save_files
from adapters.terminal.outbound import render_totals, shown
from adapters.terminal.progress import TerminalProgress
from bot.audit.replay import render as render_replay
from bot.errors import OpsloopError
from bot.files import private_dir, private_file
from bot.ports import ChatService, CommandTarget
from bot.surface import (
    Command,
    CommandName,
    CommandReply,
    Coordinates,
    Decision,
    Incoming,
    Outcome,
    parse_command,
)
from sandbox.errors import SandboxError

COMMANDS = (
    "/new  /cost  /replay  /stop  /approve  /deny  /attach PATH  /exit   "
    "(Alt-Enter: new line; Ctrl-C: stop the loop)"
)
APPROVE_QUESTION = "run this block? [y/N] "


def terminal_coordinates(*, platform: str = "terminal", thread: str = "chat") -> Coordinates:
    """Coordinates of this user's terminal conversations on this host."""
    return Coordinates(
        platform=platform, workspace=socket.gethostname(), channel=getpass.getuser(), thread=thread
    )


async def run_with_ctrl_c(
    *, service: ChatService, conversation_id: str, progress: TerminalProgress
) -> Outcome:
    """Run a loop; Ctrl-C asks the service to stop it instead of killing the program."""
    loop = asyncio.get_running_loop()

    def on_sigint() -> None:
        progress.console.print("\n[yellow]stopping…[/yellow]")
        loop.create_task(service.stop(conversation_id))

    installed = False
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGINT, on_sigint)
        installed = True
    try:
        return await service.run(conversation_id, progress)
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)


class TerminalService(ChatService, CommandTarget, Protocol):
    """What the chat needs: the chat service and the commands' own calls."""


def unknown_outcomes(events: list[dict[str, Any]]) -> list[str]:
    """One line per block whose outcome a resume recorded as unknown (it may have run)."""
    return [
        f"block {e.get('block_id', '?')}: outcome unknown, not run again: {e.get('detail', '')}"
        for e in events
        if e.get("type") == "BlockOutcomeUnknown"
    ]


class ChatRepl:
    """``opsloop chat``: read a message, run the loop, show it; slash commands in between."""

    def __init__(
        self,
        *,
        service: TerminalService,
        console: Console,
        history_file: Path,
        coordinates: Coordinates | None = None,
        files_dir: Path | None = None,
        model_name: str = "",
        fresh: bool = False,
    ) -> None:
        self.service = service
        self.console = console
        self.history_file = history_file
        self.coordinates = coordinates or terminal_coordinates()
        self.progress = TerminalProgress(console)
        self.files_dir = files_dir or history_file.parent / "files"  # answers' files go here
        self.attached: list[Path] = []  # /attach: sent with the next message
        self.model_name = model_name  # "provider:model", for the banner
        self.fresh = fresh  # --new: a new conversation starts with the first message

    def _session(self) -> Any:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory
        from prompt_toolkit.key_binding import KeyBindings

        bindings = KeyBindings()

        @bindings.add("enter")
        def _submit(event: Any) -> None:
            event.current_buffer.validate_and_handle()

        @bindings.add("escape", "enter")
        def _newline(event: Any) -> None:
            event.current_buffer.insert_text("\n")

        private_dir(self.history_file.parent)  # every line typed is in it: its owner's only
        private_file(self.history_file)
        return PromptSession(
            history=FileHistory(str(self.history_file)), multiline=True, key_bindings=bindings
        )

    def _read_prompt(self) -> Callable[[], Awaitable[str]]:
        session = self._session()

        async def read() -> str:
            return str(await session.prompt_async("you> ", prompt_continuation="...> "))

        return read

    async def _read_piped(self) -> str:
        """One message per line when stdin is not a terminal (``opsloop chat < questions``)."""
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            raise EOFError
        self.console.print(shown(f"you> {line.rstrip()}"))
        return line

    async def _answer(self, question: str, *, timeout: float) -> str | None:
        """One line typed in answer to ``question``; None when nobody answered in time."""
        if sys.stdin.isatty():
            from prompt_toolkit import PromptSession

            reading: Awaitable[str] = PromptSession().prompt_async(question)
        else:
            self.console.print(shown(question), end="")
            reading = asyncio.to_thread(sys.stdin.readline)
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                return str(await reading)
        except (TimeoutError, EOFError, KeyboardInterrupt):
            self.console.print()
            return None

    async def follow(self, outcome: Outcome) -> Outcome:
        """While the loop waits for an approval, ask ``run this block? [y/N]`` and go on.

        No answer before the request expires lets it expire; anything but y/yes denies."""
        while (request := outcome.awaiting) is not None:
            timeout = request.expires_at - time.time()
            answer = await self._answer(APPROVE_QUESTION, timeout=timeout)
            if answer is not None:
                approve = answer.strip().lower() in ("y", "yes")
                decision = Decision(
                    coordinates=request.coordinates,
                    by=self.coordinates.channel,
                    approve=approve,
                    request_id=request.request_id,
                    reason="" if approve else f"{self.coordinates.channel} answered no",
                )
                reply = await self.service.decide(decision)
                self.console.print(shown(reply.detail, style="dim"))
            outcome = await self._run_once(request.conversation_id)
        return outcome

    async def run_loop(self, conversation_id: str) -> Outcome:
        """Run a conversation's loop, asking for each approval it waits for; the files the
        answer carries are saved and their paths printed."""
        outcome = await self.follow(await self._run_once(conversation_id))
        if outcome.files:
            paths = save_files(outcome.files, self.files_dir / conversation_id)
            for file, path in zip(outcome.files, paths, strict=True):
                self.console.print(shown(f"file {file.name} ({len(file.data)} bytes): {path}"))
        for skipped in outcome.files_skipped:
            self.console.print(shown(f"not sent from /workspace/outbox: {skipped}", style="dim"))
        return outcome

    async def _run_once(self, conversation_id: str) -> Outcome:
        return await run_with_ctrl_c(
            service=self.service, conversation_id=conversation_id, progress=self.progress
        )

    async def resume_interrupted(self) -> None:
        """Finish terminal conversations whose loop a killed process left open, and ask again
        about the blocks still waiting for a yes here (nobody else can give it)."""
        for cid, _coords in await self.service.interrupted(platform=self.coordinates.platform):
            self.console.print(f"[dim]resuming interrupted conversation {cid[:8]}…[/dim]")
            seen = len(await self.service.timeline(cid))
            await self.run_loop(cid)
            for line in unknown_outcomes((await self.service.timeline(cid))[seen:]):
                self.console.print(shown(line, style="yellow"))
        for request in await self.service.pending_approvals():
            if request.coordinates.platform != self.coordinates.platform:
                continue
            cid = request.conversation_id
            if request.expires_at <= time.time():  # the loop records the expiry, tells the model
                await self.run_loop(cid)
                continue
            self.console.print(f"[dim]conversation {cid[:8]} waits for an approval…[/dim]")
            await self.progress.approval_requested(request)
            await self.follow(Outcome(cid, answer=None, stopped_reason=None, awaiting=request))

    async def run(self) -> None:
        """The read-run-show loop, until /exit or end of input."""
        read = self._read_prompt() if sys.stdin.isatty() else self._read_piped
        await self.resume_interrupted()
        cid = None if self.fresh else await self.service.current_conversation(self.coordinates)
        self.console.print(shown(self.banner(cid), style="bold"))
        while True:
            try:
                text = await read()
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt clears the line, like a shell
            except EOFError:
                return
            text = text.strip()
            if not text:
                continue
            if text.startswith("/"):
                if not await self.command(text):
                    return
                continue
            try:
                await self.send(text)
            except (OpsloopError, SandboxError) as exc:  # one sentence, and the chat goes on
                self.progress.reset()
                self.console.print(shown(f"opsloop: {exc}", style="red"))

    def banner(self, conversation_id: str | None) -> str:
        """The first line: the model in use, the conversation (none yet after ``--new``: it
        starts with the first message) and the commands."""
        model = f" · model {self.model_name}" if self.model_name else ""
        where = f"conversation {conversation_id[:8]}" if conversation_id else "new conversation"
        return f"opsloop chat{model} · {where} · {COMMANDS}"

    async def send(self, text: str) -> Outcome | None:
        """Record one message and run its loop (in a new conversation after ``--new``)."""
        if self.fresh:  # only now: opening and closing the chat records nothing
            await self.service.new_conversation(self.coordinates, by=self.coordinates.channel)
            self.fresh = False
        incoming = Incoming(
            coordinates=self.coordinates,
            message_key=f"terminal-{uuid.uuid4()}",
            author=self.coordinates.channel,
            text=text,
        )
        receipt = await self.service.receive(incoming)
        if receipt.status != "recorded":
            self.console.print(shown(receipt.reply or "(not recorded)"))
            return None
        files, self.attached = self.attached, []
        if files:
            notes = await self.service.attach(
                receipt.conversation_id,
                [local_attachment(p) for p in files],
                by=self.coordinates.channel,
            )
            for note in notes:
                said = f"not attached: {note.refused}" if note.refused else "in /workspace/inbox"
                self.console.print(shown(f"{note.name}: {said}", style="dim"))
        return await self.run_loop(receipt.conversation_id)

    async def command(self, text: str) -> bool:
        """Handle a slash command; False means leave the REPL."""
        word = text.split()[0].lower()
        if word in {"/exit", "/quit"}:
            return False
        if word == "/attach":
            self._attach(text.partition(" ")[2].strip())
            return True
        name = parse_command(word)
        if name is None:
            self.console.print(shown(f"unknown command {word}; {COMMANDS}"))
            return True
        incoming = Incoming(
            coordinates=self.coordinates,
            message_key=f"terminal-{uuid.uuid4()}",
            author=self.coordinates.channel,
            text=text,
        )
        reply = await self.service.handle(Command(name, incoming))
        self.show(reply)
        if reply.decision is not None and reply.decision.resumes and reply.conversation_id:
            await self.run_loop(reply.conversation_id)
        return True

    def _attach(self, path: str) -> None:
        """Queue a local file for the next message (checked and read when it is sent)."""
        if not path:
            self.console.print(shown("usage: /attach PATH (sent with your next message)"))
            return
        file = Path(path).expanduser()
        if not file.is_file():
            self.console.print(shown(f"not a file: {file}", style="red"))
            return
        self.attached.append(file)
        self.console.print(shown(f"{file.name} will go with your next message", style="dim"))

    def show(self, reply: CommandReply) -> None:
        """A command's reply on the console."""
        if reply.decision is not None and reply.conversation_id is None:
            self.console.print(shown(reply.decision.detail))
            return
        if reply.refused or (reply.name is not CommandName.NEW and reply.conversation_id is None):
            self.console.print(shown(reply.refused or "no conversation yet: type a message"))
            return
        cid = reply.conversation_id or ""
        match reply.name:
            case CommandName.NEW:
                self.console.print(f"new conversation {(reply.new_conversation_id or '')[:8]}")
            case CommandName.COST:
                assert reply.totals is not None
                self.console.print(render_totals(reply.totals, conversation_id=cid))
            case CommandName.REPLAY:
                for line in render_replay(list(reply.timeline), fmt="text"):
                    self.console.print(Text(line))  # a str would turn :skull: into an emoji
            case CommandName.STOP:
                self.console.print("stopped" if reply.stopped else "nothing is running")
            case CommandName.APPROVE | CommandName.DENY:
                assert reply.decision is not None
                self.console.print(shown(reply.decision.detail))
            case _:
                assert_never(reply.name)
