"""What the model is told about the form of its last reply (pure): the parser's problems,
and what a turn cap or the cut after its block took from it (issue 15)."""

from __future__ import annotations

from bot.prompt.system import ModelTurn
from domain.helpers import parse_helpers


def turn_problems(turn: ModelTurn) -> tuple[str, ...]:
    """What the model is told about the form of its reply: the parser's problems, and what
    a cap or the cut after its block took from it."""
    parsed = parse_helpers(turn.text)
    problems = list(parsed.problems)
    if turn.truncated is not None and not parsed.blocks:
        why = CUT_REASONS.get(turn.truncated, turn.truncated)
        problems.append(
            f"Your reply was cut ({why}) before it held a complete block or an answer. "
            "Be brief: run one small block, or answer in a few sentences."
        )
    if turn.discarded_chars:
        problems.append(
            f"You wrote {turn.discarded_chars} more characters after your block; they were "
            "discarded. End your reply with the block: its result comes from opsloop, never "
            "write it yourself."
        )
    return tuple(problems)


CUT_REASONS = {
    "tokens": "it reached the output token limit",
    "time": "it ran past the time limit of a turn",
    "repetition": "it kept repeating itself",
}
