"""The terminal's ``Progress``: the loop's steps as they happen, on a console."""

from __future__ import annotations

import io

from rich.console import Console

from adapters.terminal.progress import TerminalProgress
from tests.port_fakes import run_result


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=80, force_terminal=False, color_system=None), out


async def test_progress_streams_prose_shows_code_and_results_then_the_answer() -> None:
    term, out = console()
    progress = TerminalProgress(term)

    await progress.thinking()
    for chunk in ("Let me ", "look.\n<help", 'ers lang="bash">\ndf -h\n</helpers>'):
        await progress.model_text(chunk)
    await progress.block_started(index=1, total=1, language="bash", code="df -h")
    await progress.block_finished(
        index=1, total=1, language="bash", code="df -h", result=run_result(stdout="/dev/sda1 91%\n")
    )
    await progress.thinking()
    await progress.model_text("Disk is 91% full.")
    await progress.answered("Disk is 91% full.")

    text = out.getvalue()
    assert text.index("Let me look.") < text.index("block 1/1") < text.index("/dev/sda1 91%")
    assert text.count("Disk is 91% full.") == 1  # streamed once, not printed again
    assert "<helpers" not in text


async def test_an_answer_that_was_not_streamed_is_printed() -> None:
    term, out = console()
    progress = TerminalProgress(term)
    await progress.thinking()
    await progress.answered("All good.")
    assert "All good." in out.getvalue()


async def test_a_stop_is_shown_with_its_reason() -> None:
    term, out = console()
    await TerminalProgress(term).stopped(reason="turn_limit", detail="10 turns used")
    assert "stopped (turn_limit): 10 turns used" in out.getvalue()


async def test_a_budget_stop_shows_the_sentence_with_the_spend_and_the_reset() -> None:
    out = io.StringIO()
    term = Console(file=out, width=200, force_terminal=False, color_system=None)
    sentence = (
        "You (alice) have used $2.13 of your $2.00 daily budget today; "
        "it resets at 00:00 UTC, in 3 h 12 min."
    )
    await TerminalProgress(term).stopped(reason="budget", detail=sentence)
    assert f"stopped (budget): {sentence}" in out.getvalue()
