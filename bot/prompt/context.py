"""Building the messages of the next model call so that they fit the model's context window.

``build_prompt`` is pure: the same system prompt, history, window and estimator always give
the same messages, so a replay can rebuild what was sent and compare ``fingerprint``.

What gives way when the history does not fit, in this order (each step oldest first, and
only as far as needed): block outputs are shortened, then left out (a one-line stub stays);
then whole earlier model replies with their results; then messages of people who may not use
opsloop, then earlier user messages; the most recent user message is only ever shortened
(head and tail), never left out. In a thread with several authors, or with messages of
people who may not use opsloop, each message is framed with its author
(``bot.prompt.untrusted``). Block results and parser problems go to the model as user-role
messages, and consecutive messages of one role are merged, since some chat templates insist
that roles alternate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bot.ports import ChatMessage, Role
from bot.prompt.system import (
    DEFAULT_RESULT_CHARS,
    BlockOutcome,
    HistoryItem,
    UserMessage,
    clip,
    render_problems,
    render_result,
)
from bot.prompt.untrusted import message
from domain.helpers import parse_helpers
from domain.tokens import MESSAGE_OVERHEAD, estimate_tokens

DEFAULT_CONTEXT_TOKENS = 8192
DEFAULT_REPLY_TOKENS = 1024  # kept free for the model's answer
SHORT_RESULT_CHARS = 400  # what an old block output is shortened to before it is left out
_PEOPLE = ("user", "aside")  # parts people wrote, which belong to no model reply


TokenEstimator = Callable[[str], int]


@dataclass(frozen=True)
class Prompt:
    """The messages for one model call, their fingerprint, and what was cut to fit."""

    messages: tuple[ChatMessage, ...]
    fingerprint: str  # recorded in ModelReplied.prompt_fingerprint
    notes: str = ""  # recorded in ModelReplied.prompt_notes; empty when nothing was cut
    tokens: int = 0  # estimated size of the prompt


def fingerprint(messages: Sequence[ChatMessage]) -> str:
    """sha256 (hex) of the canonical JSON of ``messages`` (role and content, in order)."""
    canonical = json.dumps(
        [{"role": m.role, "content": m.content} for m in messages],
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def context_tokens_for(table: Mapping[str, int], *, provider: str, model: str) -> int:
    """The window of ``provider:model`` from ``PromptPolicy.context_tokens`` (else 8192)."""
    for key in (f"{provider}:{model}", model):
        if key in table:
            return table[key]
    return DEFAULT_CONTEXT_TOKENS


@dataclass
class _Part:
    """One piece of history, as rendered for the prompt, with what it may be cut to."""

    role: Role
    kind: str  # "user" | "aside" (may not use opsloop) | "model" | "result" | "problems"
    exchange: int  # which model reply it belongs to; -1 for user messages
    text: str
    tokens: int
    outcome: BlockOutcome | None = None
    dropped: bool = False


def build_prompt(
    *,
    system: str,
    history: Sequence[HistoryItem],
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
    result_chars: int = DEFAULT_RESULT_CHARS,
    reply_tokens: int = DEFAULT_REPLY_TOKENS,
    estimate: TokenEstimator = estimate_tokens,
) -> Prompt:
    """The messages for the next model call, inside ``context_tokens`` minus the reply's room.

    The reply's room is ``reply_tokens``, at most a quarter of the window.
    """
    budget = context_tokens - min(reply_tokens, context_tokens // 4)
    parts = _parts(history, result_chars=result_chars, estimate=estimate)
    fitter = _Fitter(system=system, parts=parts, budget=budget, estimate=estimate)
    fitter.fit(short_chars=min(SHORT_RESULT_CHARS, result_chars))
    messages = fitter.messages()
    return Prompt(
        messages=messages,
        fingerprint=fingerprint(messages),
        notes=fitter.notes(),
        tokens=fitter.total(),
    )


def _parts(
    history: Sequence[HistoryItem], *, result_chars: int, estimate: TokenEstimator
) -> list[_Part]:
    parts: list[_Part] = []
    exchange = -1
    problems: tuple[str, ...] = ()
    people = [item for item in history if isinstance(item, UserMessage)]
    framed = len({m.author for m in people}) > 1 or not all(m.trusted for m in people)

    def add(role: Role, kind: str, text: str, outcome: BlockOutcome | None = None) -> None:
        owner = -1 if kind in _PEOPLE else exchange
        tokens = estimate(text) + MESSAGE_OVERHEAD
        parts.append(_Part(role, kind, owner, text, tokens, outcome))

    def flush_problems() -> None:
        nonlocal problems
        if problems:
            add("user", "problems", render_problems(problems))
            problems = ()

    for item in history:
        if isinstance(item, BlockOutcome):
            add("user", "result", render_result(item, result_chars=result_chars), item)
            continue
        flush_problems()
        if isinstance(item, UserMessage):
            text = item.text
            if framed:
                text = message(text, author=item.author, trusted=item.trusted)
            add("user", "user" if item.trusted else "aside", text)
        else:
            exchange += 1
            add("assistant", "model", item.text)
            problems = parse_helpers(item.text).problems
    flush_problems()
    return parts


class _Fitter:
    """Cuts parts, in the documented order, until the prompt fits its budget."""

    def __init__(
        self, *, system: str, parts: list[_Part], budget: int, estimate: TokenEstimator
    ) -> None:
        self.system = system
        self.parts = parts
        self.budget = budget
        self.estimate = estimate
        self.system_tokens = estimate(system) + MESSAGE_OVERHEAD
        self.sum = sum(part.tokens for part in parts)
        self.shortened: list[str] = []
        self.stubbed: list[str] = []
        self.dropped_replies = 0
        self.dropped_users = 0
        self.user_cut = 0

    def total(self) -> int:
        note = self._model_note()
        extra = self.estimate("\n\n" + note) if note else 0
        return self.system_tokens + extra + self.sum

    def fits(self) -> bool:
        return self.total() <= self.budget

    def fit(self, *, short_chars: int) -> None:
        results = [p for p in self.parts if p.kind == "result" and p.outcome is not None]
        for level, names in ((short_chars, self.shortened), (0, self.stubbed)):
            for part in results:
                if self.fits():
                    return
                assert part.outcome is not None
                text = render_result(part.outcome, result_chars=level)
                if text != part.text:
                    self._replace(part, text)
                    names.append(part.outcome.block_id)
        exchanges = sorted({p.exchange for p in self.parts if p.kind not in _PEOPLE})
        for exchange in exchanges:
            if self.fits():
                return
            for part in self.parts:
                if part.exchange == exchange and part.kind not in _PEOPLE:
                    self._drop(part)
            self.dropped_replies += 1
        users = [p for p in self.parts if p.kind == "user"]
        for part in [p for p in self.parts if p.kind == "aside"] + users[:-1]:
            if self.fits():
                return
            self._drop(part)
            self.dropped_users += 1
        if users and not self.fits():
            self._shorten_last_user(users[-1])

    def _replace(self, part: _Part, text: str) -> None:
        tokens = self.estimate(text) + MESSAGE_OVERHEAD
        self.sum += tokens - part.tokens
        part.text, part.tokens = text, tokens

    def _drop(self, part: _Part) -> None:
        self.sum -= part.tokens
        part.dropped, part.tokens = True, 0

    def _shorten_last_user(self, part: _Part) -> None:
        original = part.text
        room = self.budget - (self.total() - part.tokens) - MESSAGE_OVERHEAD
        # characters per token of this very text, so the cut lands near the budget
        per_token = len(original) / max(1, self.estimate(original))
        limit = max(0, int(room * per_token) - 64)
        while True:
            self._replace(part, clip(original, limit=limit))
            if self.fits() or limit == 0:
                break
            limit = limit * 3 // 4
        self.user_cut = len(original) - len(part.text)

    def _model_note(self) -> str:
        left: list[str] = []
        if self.dropped_replies:
            left.append(f"{self.dropped_replies} earlier replies of yours with their results")
        if self.dropped_users:
            left.append(f"{self.dropped_users} earlier user messages")
        if not left:
            return ""
        return (
            "Note: to fit the context window, "
            + " and ".join(left)
            + " were left out of this conversation's history below."
        )

    def messages(self) -> tuple[ChatMessage, ...]:
        note = self._model_note()
        system = f"{self.system}\n\n{note}" if note else self.system
        merged: list[tuple[Role, list[str]]] = []
        for part in self.parts:
            if part.dropped:
                continue
            if merged and merged[-1][0] == part.role:
                merged[-1][1].append(part.text)
            else:
                merged.append((part.role, [part.text]))
        return (ChatMessage(role="system", content=system),) + tuple(
            ChatMessage(role=role, content="\n\n".join(texts)) for role, texts in merged
        )

    def notes(self) -> str:
        said: list[str] = []
        if self.shortened:
            said.append("shortened output of " + _blocks(self.shortened))
        if self.stubbed:
            said.append("left out output of " + _blocks(self.stubbed))
        if self.dropped_replies:
            said.append(f"left out {self.dropped_replies} model replies with their results")
        if self.dropped_users:
            said.append(f"left out {self.dropped_users} user messages")
        if self.user_cut:
            said.append(f"cut {self.user_cut} characters from the latest user message")
        return "; ".join(said)


def _blocks(ids: list[str]) -> str:
    """Block ids for a short note: all of a few, or the count and the first and last."""
    if len(ids) <= 4:
        return ", ".join(ids)
    return f"{len(ids)} blocks ({ids[0]} … {ids[-1]})"
