"""The terminal surface's outbound renderables: result panels and the cost line."""

from __future__ import annotations

import io

from rich.console import Console

from adapters.terminal.outbound import render_result, render_totals
from bot.surface import Totals
from tests.port_fakes import run_result


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=80, force_terminal=False, color_system=None), out


def test_a_result_panel_shows_status_output_and_limits_hit() -> None:
    term, out = console()
    term.print(
        render_result(
            run_result(exit_code=None, signal=9, stdout="partial\n", timed_out=True),
            index=2,
            total=3,
            language="python",
        )
    )
    text = out.getvalue()
    assert "result 2/3" in text and "signal 9" in text and "timed out" in text and "partial" in text


def test_a_block_with_no_output_says_so() -> None:
    term, out = console()
    term.print(render_result(run_result(), index=1, total=1, language="bash"))
    assert "(no output)" in out.getvalue() and "exit 0" in out.getvalue()


def test_the_cost_line_shows_tokens_cost_and_blocks() -> None:
    totals = Totals(
        messages=2,
        model_turns=3,
        input_tokens=1200,
        output_tokens=80,
        cost=0.0123,
        blocks=4,
        duration_ms=5300,
    )
    line = render_totals(totals, conversation_id="0123456789abcdef")
    assert line.startswith("conversation 01234567:")
    assert "1200 in / 80 out tokens" in line and "$0.0123" in line and "4 blocks" in line
