"""``opsloop chat`` shows untrusted text as data: escape sequences and rich markup are never obeyed.

Each attack is what a block's output, the model's text, a user's text or an error from a
remote server could carry. The console is a real rich console that believes it writes to a
terminal, so rich's own styling is there and only the attack's sequences must be missing.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from rich.console import Console

from adapters.terminal.progress import TerminalProgress
from adapters.terminal.repl import ChatRepl
from bot.errors import OpsloopError
from bot.surface import Incoming, Receipt
from sandbox.result import RunResult
from tests.fake_chat_service import FakeChatService
from tests.hostile import ATTACK, MARKUP, SHOWN, assert_shown_not_obeyed


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=True, color_system="standard")
    return console, out


def assert_markup_is_text(screen: str) -> None:
    assert "\x1b]8;" not in screen  # no hyperlink was made
    assert MARKUP in screen


async def test_a_streamed_model_reply_shows_escape_sequences_instead_of_obeying_them() -> None:
    console, out = terminal()
    progress = TerminalProgress(console)
    await progress.thinking()
    reply = f"Look: {ATTACK} {MARKUP}"
    for start in range(0, len(reply), 3):  # sequences cut across chunks
        await progress.model_text(reply[start : start + 3])
    await progress.answered(reply)
    assert_shown_not_obeyed(out.getvalue())
    assert_markup_is_text(out.getvalue())


async def test_a_crlf_cut_between_two_chunks_is_still_one_newline() -> None:
    console, out = terminal()
    progress = TerminalProgress(console)
    await progress.thinking()
    for chunk in ("one\r", "\ntwo\rthree"):
        await progress.model_text(chunk)
    await progress.answered("one\r\ntwo\rthree")
    assert "one\ntwo␍three" in out.getvalue()


async def test_an_answer_that_was_not_streamed_is_shown_visibly() -> None:
    console, out = terminal()
    progress = TerminalProgress(console)
    await progress.thinking()
    await progress.answered(f"{ATTACK} {MARKUP}")
    assert_shown_not_obeyed(out.getvalue())
    assert_markup_is_text(out.getvalue())


async def test_block_code_and_its_language_are_shown_visibly_in_the_panel() -> None:
    console, out = terminal()
    progress = TerminalProgress(console)
    language = "py[link=https://evil.example]thon[/link]\x1b]0;owned\x07"
    await progress.block_started(index=1, total=1, language=language, code=f'print("{ATTACK}")')
    progress.reset()
    screen = out.getvalue()
    assert_shown_not_obeyed(screen)
    assert "py[link=https://evil.example]thon[/link]␛]0;owned␇" in screen
    assert "\x1b]8;" not in screen


async def test_block_output_on_stdout_and_stderr_is_shown_visibly() -> None:
    console, out = terminal()
    progress = TerminalProgress(console)
    result = RunResult(
        exit_code=1,
        signal=None,
        stdout=f"{ATTACK}\n{MARKUP}\n",
        stderr=f"{ATTACK}\n",
        duration_ms=5,
    )
    await progress.block_finished(index=1, total=1, language="bash", code="x", result=result)
    screen = out.getvalue()
    assert_shown_not_obeyed(screen)
    assert screen.count(SHOWN) == 2
    assert_markup_is_text(screen)


async def test_a_stop_detail_is_text_not_markup_or_escapes() -> None:
    console, out = terminal()
    detail = f"provider said {MARKUP} {ATTACK}"
    await TerminalProgress(console).stopped(reason="model_unavailable", detail=detail)
    screen = out.getvalue()
    assert "stopped (model_unavailable): provider said" in screen
    assert_shown_not_obeyed(screen)
    assert_markup_is_text(screen)


class HostileService(FakeChatService):
    """Refuses or fails with text that a remote server or another user chose."""

    def __init__(self, *, refuse_with: str = "", fail_with: str = "") -> None:
        super().__init__()
        self.refuse_with = refuse_with
        self.fail_with = fail_with

    async def receive(self, incoming: Incoming) -> Receipt:
        if self.fail_with:
            raise OpsloopError(self.fail_with)
        if self.refuse_with:
            return Receipt(conversation_id="c" * 36, status="refused", reply=self.refuse_with)
        return await super().receive(incoming)


async def chat_with_piped_input(
    service: FakeChatService, lines: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    console, out = terminal()
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))

    history = Path("unused")  # piped input reads no history
    repl = ChatRepl(service=service, console=console, history_file=history)
    await repl.run()
    return out.getvalue()


async def test_an_error_sentence_in_the_chat_is_text_not_markup_or_escapes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = HostileService(fail_with=f"the model server answered {MARKUP} {ATTACK}")
    screen = await chat_with_piped_input(service, "hello\n", monkeypatch)
    assert "opsloop: the model server answered" in screen
    assert_shown_not_obeyed(screen)
    assert_markup_is_text(screen)


async def test_a_refusal_reply_is_shown_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    service = HostileService(refuse_with=f"Sorry: {MARKUP} {ATTACK}")
    screen = await chat_with_piped_input(service, "hello\n", monkeypatch)
    assert_shown_not_obeyed(screen)
    assert_markup_is_text(screen)


async def test_piped_input_is_echoed_visibly_and_its_block_output_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = FakeChatService(output_for=lambda text: f"{ATTACK}\n")
    screen = await chat_with_piped_input(service, f"ask {ATTACK}\n", monkeypatch)
    assert f"you> ask {SHOWN}" in screen
    assert_shown_not_obeyed(screen)
    assert screen.count(SHOWN) >= 2  # the echo and the block's result panel


async def test_a_carriage_return_in_block_output_cannot_overwrite_its_line() -> None:
    console, out = terminal()
    result = RunResult(
        exit_code=0, signal=None, stdout="rm -rf /\rls -la  \n", stderr="", duration_ms=5
    )
    await TerminalProgress(console).block_finished(
        index=1, total=1, language="bash", code="x", result=result
    )
    assert "rm -rf /␍ls -la" in out.getvalue()


async def test_an_unknown_command_is_echoed_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = await chat_with_piped_input(FakeChatService(), f"/{MARKUP}{ATTACK}\n", monkeypatch)
    assert_shown_not_obeyed(screen)
    assert "\x1b]8;" not in screen and "unknown command /[link=https://evil.example]" in screen
