"""``opsloop demo``: a built-in scripted conversation, run end to end on the embedded defaults.

The model is scripted (``bot/cli/demo_script.toml``), but everything else is real: a fresh SQLite
event store, the nsjail sandbox, the loop, the terminal surface and the replay. A scripted
model cannot read results, so its final turn quotes the last block's output through the
``{last_stdout}`` placeholder, filled in from the result message the loop sent it: the
answer genuinely comes from code that ran in the sandbox.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from importlib import resources
from typing import Any

from bot.ports import ChatMessage
from bot.providers.pricing import PriceTable
from bot.providers.scripted import SCRIPT_EXHAUSTED, ScriptedModel, ScriptedTurn, parse_script

SCRIPT = "demo_script.toml"
DEMO_MODEL = "demo"  # --provider scripted --model demo: the built-in model anyone can chat with
PLACEHOLDER = "{last_stdout}"
NO_RESULT = (
    "The sandbox gave me no output to answer from (see the block results above), so I have "
    "no answer this time. `opsloop doctor` checks the sandbox and says how to fix it."
)

# bot.prompt.system.render_result frames each stream as "--- stdout (data ID) ---" …
# "--- end of stdout (data ID) ---" (or "--- stdout: empty ---"); results of one turn may
# share one user message.
RESULT_HEADER = "Result of block "
_STDOUT = re.compile(
    r"^--- stdout(?P<empty>: empty) ---$"
    r"|^--- stdout \(data (?P<id>[0-9a-f]+)\) ---\n"
    r"(?P<body>.*?)^--- end of stdout \(data (?P=id)\) ---$",
    re.M | re.S,
)


def load_demo_script() -> tuple[str, tuple[ScriptedTurn, ...]]:
    """The demo's question and its scripted turns (shipped inside the package)."""
    text = resources.files("bot.cli").joinpath(SCRIPT).read_text("utf-8")
    data: dict[str, Any] = tomllib.loads(text)
    return str(data["question"]), parse_script(data, source=SCRIPT)


def last_stdout(messages: Sequence[ChatMessage]) -> str:
    """The stdout of the last block result in the newest user-role message ('' if none).

    Only the very last result counts: when the last block was skipped or refused there is
    no output to quote, even if an earlier block printed something.
    """
    newest = next((m.content for m in reversed(messages) if m.role == "user"), "")
    start = newest.rfind(RESULT_HEADER)
    if start < 0:
        return ""
    found = _STDOUT.search(newest, start)
    if found is None or found.group("empty"):
        return ""
    return found.group("body").rstrip("\n") + "\n"


class DemoModel(ScriptedModel):
    """The scripted model of the demo: fills ``{last_stdout}`` from what it was sent."""

    def turn_for(self, messages: Sequence[ChatMessage]) -> ScriptedTurn:
        """The scripted turn, with the placeholder replaced by the last block's stdout."""
        return self.filled(super().turn_for(messages), messages)

    def filled(self, turn: ScriptedTurn, messages: Sequence[ChatMessage]) -> ScriptedTurn:
        """``turn`` with the placeholder replaced by the last block's stdout."""
        if PLACEHOLDER not in turn.text:
            return turn
        output = last_stdout(messages)
        if not output.strip():  # never claim a result the sandbox did not produce
            return ScriptedTurn(text=NO_RESULT)
        return ScriptedTurn(text=turn.text.replace(PLACEHOLDER, output.rstrip("\n")))


class ChatDemoModel(DemoModel):
    """``--provider scripted --model demo``: the demo's turns played again for every question,
    so anyone can chat (``opsloop chat``, ``ask``, a surface) with no model server. It does
    not read the question: it is a stand-in for a model, and its banner says so."""

    def turn_for(self, messages: Sequence[ChatMessage]) -> ScriptedTurn:
        """The turn of the demo script that follows the newest question."""
        since = 0
        for message in messages:
            if message.role == "assistant":
                since += 1
            elif message.role == "user" and RESULT_HEADER not in message.content:
                since = 0  # a question (a block result is a user message too)
        turn = self.turns[since] if since < len(self.turns) else ScriptedTurn(SCRIPT_EXHAUSTED)
        return self.filled(turn, messages)


def chat_demo_model(*, prices: PriceTable | None = None) -> ChatDemoModel:
    """The built-in scripted model ``demo`` (``--provider scripted --model demo``)."""
    _question, turns = load_demo_script()
    return ChatDemoModel(turns, label=DEMO_MODEL, prices=prices)


def demo_model(*, chunk_delay: float = 0.01) -> tuple[str, DemoModel]:
    """The demo's question and the model that plays it (streamed slowly enough to watch)."""
    question, turns = load_demo_script()
    return question, DemoModel(turns, label="demo", chunk_delay=chunk_delay)
