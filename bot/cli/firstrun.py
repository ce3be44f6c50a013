"""The first ``ask`` or ``chat`` with no model configured fails at once, with what to do.

With nothing set, opsloop would use Ollama on 127.0.0.1:11434; where no Ollama runs, the
provider's retries took about 9 s and left a stopped conversation behind. So when the model
is the unconfigured default (no ``--provider``/``--model``, no ``OPSLOOP_PROVIDER``,
``OPSLOOP_MODEL``, ``OPSLOOP_FALLBACK`` or ``OLLAMA_HOST``), one TCP connect says whether a
server is there before anything is recorded. A configured model is never second-guessed:
its own retries and errors apply.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from bot.errors import ConfigError
from bot.settings import Settings

CONNECT_SECONDS = 1.0
CONFIGURING = frozenset({"provider", "model", "fallback", "ollama_host"})


def no_model_configured(
    settings: Settings, *, provider: str | None = None, model: str | None = None
) -> bool:
    """Nothing names a model: the default (Ollama on its default address) is in use."""
    return provider is None and model is None and not CONFIGURING & settings.model_fields_set


def no_model_sentence(host: str) -> str:
    """What to do when no model is configured and no Ollama answers at ``host``."""
    return (
        f"no model is configured, and no Ollama server answers at {host}: pick a model with "
        "--provider and --model (or OPSLOOP_PROVIDER and OPSLOOP_MODEL; docs/providers.md), "
        "or chat with the built-in scripted one, --provider scripted --model demo; "
        "`opsloop demo` shows the whole loop working"
    )


def check_default_model(
    settings: Settings, *, provider: str | None = None, model: str | None = None
) -> None:
    """Raise ``ConfigError`` at once when the unconfigured default model has no server."""
    if not no_model_configured(settings, provider=provider, model=model):
        return
    if not server_listens(settings.ollama_host):
        raise ConfigError(no_model_sentence(settings.ollama_host))


def server_listens(url: str) -> bool:
    """Does anything accept a TCP connection at ``url``'s host and port (within a second)?"""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    address = (parts.hostname or "127.0.0.1", parts.port or 11434)
    try:
        with socket.create_connection(address, timeout=CONNECT_SECONDS):
            return True
    except OSError:  # refused, unreachable or silent: no server to talk to
        return False
