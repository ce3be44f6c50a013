"""The terminal surface: ``Progress`` drawn with rich, and the ``opsloop chat`` REPL.

It only translates: a typed line becomes an ``Incoming`` (or a slash command), and the loop's
progress becomes spinners, streamed prose and syntax-highlighted panels. Ctrl-C while a loop
runs stops that loop (recorded as cancelled); it never kills the program. Text that others
wrote (model, block, user, error, store) is printed as ``shown(text)``: control characters
made visible, and a rich ``Text`` so that ``[link=…]`` or ``:emoji:`` in it stays literal.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import signal
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, assert_never

from rich.console import Console
from rich.panel import Panel
from rich.status import Status
from rich.syntax import Syntax
from rich.text import Text

from bot.audit.replay import render as render_replay
from bot.errors import OpsloopError
from bot.ports import ChatService
from bot.surface import (
    Command,
    CommandName,
    CommandReply,
    Coordinates,
    Incoming,
    Outcome,
    Totals,
    failed,
    parse_command,
)
from bot.visible import visible
from domain.helpers import ProseStream
from sandbox.errors import SandboxError

if TYPE_CHECKING:
    from sandbox.result import RunResult

COMMANDS = "/new  /cost  /replay  /stop  /exit   (Alt-Enter: new line; Ctrl-C: stop the loop)"
_LEXER = {"python": "python", "bash": "bash", "sh": "bash"}


def terminal_coordinates(*, platform: str = "terminal", thread: str = "chat") -> Coordinates:
    """Coordinates of this user's terminal conversations on this host."""
    return Coordinates(
        platform=platform, workspace=socket.gethostname(), channel=getpass.getuser(), thread=thread
    )


def shown(text: str, *, style: str = "") -> Text:
    """Untrusted ``text`` as rich text: its control characters visible, never markup."""
    return Text(visible(text), style=style)


def render_result(result: RunResult, *, index: int, total: int, language: str) -> Panel:
    """A block's outcome as a panel: exit status, limits hit, stdout and stderr."""
    flags = [
        name
        for name, hit in (
            ("timed out", result.timed_out),
            ("memory limit hit", result.memory_exceeded),
            ("output truncated", result.output_truncated),
            ("UNSAFE local run", getattr(result, "unsafe_local", False)),
        )
        if hit
    ]
    status = f"exit {result.exit_code}" if result.signal is None else f"signal {result.signal}"
    ok = not failed(result) and not flags  # green only without failure or warning
    body = Text()
    if result.stdout.strip():
        body.append(visible(result.stdout.rstrip("\n")))
    if result.stderr.strip():
        body.append(("\n" if body else "") + visible(result.stderr.rstrip("\n")), style="red")
    if not body:
        body.append("(no output)", style="dim")
    title = f"result {index}/{total} · {status} · {result.duration_ms} ms"
    if flags:
        title += " · " + ", ".join(flags)
    return Panel(body, title=title, title_align="left", border_style="green" if ok else "red")


def render_code(*, index: int, total: int, language: str, code: str) -> Panel:
    """A block's code, highlighted, as it is about to run."""
    lexer = _LEXER.get(language, language)  # an unknown name falls back to plain text
    syntax = Syntax(visible(code), lexer, line_numbers=False, word_wrap=True)
    title = shown(f"block {index}/{total} · {language}")  # a str title would be markup
    return Panel(syntax, title=title, title_align="left", border_style="cyan")


def render_totals(totals: Totals, *, conversation_id: str) -> str:
    """The ``/cost`` line."""
    return (
        f"conversation {conversation_id[:8]}: {_count(totals.messages, 'message')}, "
        f"{_count(totals.model_turns, 'model turn')}, "
        f"{totals.input_tokens} in / {totals.output_tokens} out tokens, "
        f"${totals.cost:.4f}, {_count(totals.blocks, 'block')}, {totals.duration_ms / 1000:.1f} s"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class TerminalProgress:
    """``bot.ports.Progress`` on a rich console: spinner, streamed prose, code and results."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._status: Status | None = None
        self._filter = ProseStream()
        self._streamed = False
        self._cr = ""  # a streamed "\r" held back: the next chunk may make it "\r\n"

    def _spin(self, message: str) -> None:
        self._unspin()
        self._status = self.console.status(message, spinner="dots")
        self._status.start()

    def _unspin(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def reset(self) -> None:
        """Stop any spinner and forget a half-streamed reply (after an error)."""
        self._unspin()
        self._filter = ProseStream()
        self._streamed = False
        self._cr = ""

    def _end_stream(self) -> None:
        rest, self._cr = self._cr + self._filter.flush(), ""
        if rest:
            self.console.print(shown(rest), end="")
        if self._streamed:
            self.console.print()
        self._streamed = False

    async def thinking(self) -> None:
        """The loop is waiting for the model."""
        self._filter = ProseStream()
        self._streamed = False
        self._cr = ""
        self._spin("thinking…")

    async def model_text(self, chunk: str) -> None:
        """A streamed piece of the model's reply (blocks are shown when they run)."""
        self._unspin()
        prose = self._cr + self._filter.feed(chunk)
        self._cr = "\r" if prose.endswith("\r") else ""
        prose = prose[: len(prose) - len(self._cr)]
        if not self._streamed:
            prose = prose.lstrip()
        if prose:
            self.console.print(shown(prose), end="", soft_wrap=True)
            self._streamed = True

    async def block_started(self, *, index: int, total: int, language: str, code: str) -> None:
        """Show the code, then spin while it runs."""
        self._unspin()
        self._end_stream()
        self.console.print(render_code(index=index, total=total, language=language, code=code))
        self._spin(f"running block {index}/{total}…")

    async def block_finished(
        self, *, index: int, total: int, language: str, code: str, result: RunResult
    ) -> None:
        """Show the block's result."""
        self._unspin()
        self.console.print(render_result(result, index=index, total=total, language=language))

    async def answered(self, text: str) -> None:
        """The final answer (already streamed unless the model did not stream)."""
        self._unspin()
        streamed = self._streamed
        self._end_stream()
        if not streamed:
            self.console.print(shown(text))

    async def stopped(self, *, reason: str, detail: str) -> None:
        """The loop stopped without an answer."""
        self._unspin()
        self._end_stream()
        line = shown(f"stopped ({reason})", style="yellow")
        if detail:
            line.append(visible(f": {detail}"))
        self.console.print(line)


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


class ChatRepl:
    """``opsloop chat``: read a message, run the loop, show it; slash commands in between."""

    def __init__(
        self,
        *,
        service: ChatService,
        console: Console,
        history_file: Path,
        coordinates: Coordinates | None = None,
    ) -> None:
        self.service = service
        self.console = console
        self.history_file = history_file
        self.coordinates = coordinates or terminal_coordinates()
        self.progress = TerminalProgress(console)

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

        self.history_file.parent.mkdir(parents=True, exist_ok=True)
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

    async def resume_interrupted(self) -> None:
        """Finish terminal conversations whose loop a killed process left open."""
        for cid, _coords in await self.service.interrupted(platform=self.coordinates.platform):
            self.console.print(f"[dim]resuming interrupted conversation {cid[:8]}…[/dim]")
            await run_with_ctrl_c(service=self.service, conversation_id=cid, progress=self.progress)

    async def run(self) -> None:
        """The read-run-show loop, until /exit or end of input."""
        read = self._read_prompt() if sys.stdin.isatty() else self._read_piped
        await self.resume_interrupted()
        cid = await self.service.current_conversation(self.coordinates)
        self.console.print(f"[bold]opsloop chat[/bold] · conversation {cid[:8]} · {COMMANDS}")
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

    async def send(self, text: str) -> Outcome | None:
        """Record one message and run its loop."""
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
        return await run_with_ctrl_c(
            service=self.service, conversation_id=receipt.conversation_id, progress=self.progress
        )

    async def command(self, text: str) -> bool:
        """Handle a slash command; False means leave the REPL."""
        word = text.split()[0].lower()
        if word in {"/exit", "/quit"}:
            return False
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
        self.show(await self.service.handle(Command(name, incoming)))
        return True

    def show(self, reply: CommandReply) -> None:
        """A command's reply on the console."""
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
            case _:
                assert_never(reply.name)
