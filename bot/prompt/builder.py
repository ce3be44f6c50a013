"""The prompt of the next model call, built from a conversation's timeline by the policy.

This is the loop's ``build_prompt``: ``bot.prompt.system`` says what the model is told,
``bot.prompt.context`` fits it into the model's window, and the policy (opsloop.toml) sets
the limits the system prompt states and the window's size, and ``bot.prompt.redacted`` takes
every secret out of what is sent. A replay rebuilds the prompt of a ``ModelReplied`` by
calling it on the events before that turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bot.config import Policy
from bot.ports import PromptBuilder
from bot.prompt.context import build_prompt, context_tokens_for
from bot.prompt.history import history_from_timeline
from bot.prompt.redacted import redacted_history, redacted_prompt
from bot.prompt.system import system_prompt
from bot.surface import RESUME_KEY_PREFIX
from domain.redaction import Redactor

if TYPE_CHECKING:
    from bot.tools.values import ToolSpec

TOOLS_SHARE = 4  # the tool list may take a quarter of the window; longer, it is names only


def prompt_builder(
    *, policy: Policy, model_name: str, redactor: Redactor | None = None
) -> PromptBuilder:
    """Timeline -> the messages of the next model call, fitted to this model's window, with
    every secret ``redactor`` knows (and every credential shape) taken out."""
    redactor = redactor if redactor is not None else Redactor({})
    provider, _, model = model_name.partition(":")
    window = context_tokens_for(policy.prompt.context_tokens, provider=provider, model=model)

    def system(tools: Sequence[ToolSpec], mounts: Sequence[str] = ()) -> str:
        return system_prompt(
            wall_seconds=policy.sandbox.wall_seconds,
            memory_mb=policy.sandbox.memory_mb,
            extra_mounts=tuple(policy.sandbox.extra_mounts),
            data_mounts=mounts,
            result_chars=policy.prompt.result_chars,
            turns_per_message=policy.loop.turns_per_message,
            tools=tools,
            tools_budget_tokens=window // TOOLS_SHARE,
            warm_kernels=policy.sandbox.warm_kernels,
        )

    plain = system(())

    def build(
        timeline: list[dict[str, Any]],
        *,
        tools: Sequence[ToolSpec] = (),
        mounts: Sequence[str] = (),
    ) -> Any:
        # A retry recorded by `opsloop resume ID` repeats the user's message; the model
        # should see the conversation as it was, not the message twice.
        events = [e for e in timeline if not _is_resume_repeat(e)]
        prompt = build_prompt(
            system=redactor.redact(system(tools, mounts) if tools or mounts else plain).text,
            history=redacted_history(history_from_timeline(events), redactor),
            context_tokens=window,
            result_chars=policy.prompt.result_chars,
        )
        return redacted_prompt(prompt, redactor)

    return build


def _is_resume_repeat(event: dict[str, Any]) -> bool:
    key = str(event.get("message_key", ""))
    return event.get("type") == "MessageReceived" and key.startswith(RESUME_KEY_PREFIX)
