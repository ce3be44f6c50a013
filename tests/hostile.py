"""Hostile text for the "output is data" regression tests, and a conversation full of it.

``ATTACK`` is what a block, a model, a user or someone with write access to the event store
could write to rewrite what an operator or an auditor sees in a terminal; ``OBEYED`` are the
sequences that must never reach the terminal, ``SHOWN`` is how ``bot.visible`` shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from bot.app.application import ConversationApp
from bot.ports import ModelReply, ProviderFailure
from bot.surface import Coordinates

# Clipboard write (OSC 52), clear screen, cursor home, window title, a one-byte C1 CSI, a
# right-to-left override ("Trojan Source").
ATTACK = "\x1b]52;c;cHduZWQ=\x07\x1b[2J\x1b[H\x1b]0;owned\x07\x9b2J\u202egnp.exe"
OBEYED = ("\x1b]52", "\x1b[2J", "\x1b[H", "\x1b]0;", "\x9b", "\u202e", "\x07")
SHOWN = "␛]52;c;cHduZWQ=␇␛[2J␛[H␛]0;owned␇\\x9b2J<U+202E>gnp.exe"
MARKUP = "[link=https://evil.example]click[/link] [reverse]x[/reverse] :skull:"
# A line that erases the line above it: a tamperer's way to hide "TAMPERED …".
ERASE = "\x1b[1A\x1b[2K\r"
# What a block prints or a model writes to ping or phish a Slack channel.
SLACK_ATTACK = "<!channel> <@U123> <https://evil.example|click>"
DISCORD_ATTACK = "@everyone <@123> <@&456> @here"


def assert_shown_not_obeyed(screen: str, *, shown: str = SHOWN) -> None:
    """No attack sequence reached ``screen``, and its visible form did."""
    for sequence in OBEYED:
        assert sequence not in screen, f"{sequence!r} reached the terminal"
    assert shown in screen


@dataclass(frozen=True)
class FakeRunResult:
    """The fields of sandbox.result.RunResult that the log records."""

    exit_code: int | None = 1
    signal: int | None = None
    stdout: str = f"{ATTACK}\n```\nnot code any more\n"
    stderr: str = f"{ATTACK}\n"
    duration_ms: int = 15
    cpu_ms: int | None = 4
    timed_out: bool = False
    memory_exceeded: bool = False
    output_truncated: bool = False
    unsafe_local: bool = False


def _reply(text: str, *, failures: tuple[ProviderFailure, ...] = ()) -> ModelReply:
    return ModelReply(
        text=text,
        provider="ollama",
        model="llama3.1",
        input_tokens=50,
        output_tokens=10,
        tokens_estimated=False,
        cost=0.5,
        priced=True,
        latency_ms=700,
        attempts=1,
        failures=failures,
    )


HOSTILE_LANGUAGE = "py`thon ``` [link=https://evil.example]x[/link]"


def record_hostile_conversation(app: ConversationApp) -> UUID:
    """A whole conversation whose every untrusted field carries ``ATTACK``."""
    where = Coordinates("slack", f"T{ATTACK}", f"C{ATTACK}", "1700000000.1")
    cid, _ = app.receive_message(
        coordinates=where, message_key="m1", author=f"alice{ATTACK}", text=f"why? {ATTACK}"
    )
    failure = ProviderFailure("groq", "llama-70b", f"HTTP 503 {ATTACK}", 3)
    code = f'print("{ATTACK}")'
    block = f'Let me look. {ATTACK}\n<helpers lang="{HOSTILE_LANGUAGE}">\n{code}\n</helpers>'
    app.record_model_reply(cid, reply=_reply(block, failures=(failure,)), prompt_fingerprint="a")
    app.start_block(cid, block_id="t1b1", limits={"wall_s": 10})
    app.finish_block(cid, block_id="t1b1", result=FakeRunResult())
    app.record_model_reply(cid, reply=_reply(f"It says {ATTACK}"), prompt_fingerprint="b")
    app.answer(cid, text=f"It says {ATTACK}\n{ERASE}all fine")
    return cid
