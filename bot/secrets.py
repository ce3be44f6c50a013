"""The secrets this process knows, by name: what every exit takes out of text.

Three sources, merged by the composition root into the one ``domain.redaction.Redactor``
that the event log, the prompt, chat and the tools' results all use:

- opsloop's own (``Settings.secrets``): the chat tokens, the model API keys, the cipher key,
  the sandbox token and the database password;
- the variables ``[redact] env`` names (opsloop.toml), read from the environment; one that
  is not set, or is empty, has nothing to redact and is left out;
- every ``${env:VAR}`` a tool uses, added by ``bot.tools.registry.ToolRegistry``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Policy
    from bot.settings import Settings


def env_secrets(names: Iterable[str], *, environ: Mapping[str, str]) -> dict[str, str]:
    """The values of the variables ``names`` that are set and not empty."""
    return {name: environ[name] for name in names if environ.get(name)}


def known_secrets(
    *, settings: Settings | None, policy: Policy, environ: Mapping[str, str]
) -> dict[str, str]:
    """opsloop's own secrets and those of ``[redact] env`` (tools add their own)."""
    own = settings.secrets() if settings is not None else {}
    return {**own, **env_secrets(policy.redact.env, environ=environ)}
