"""How every command logs: one handler on stderr, one format, and no library noise.

``text`` (the default) is one line per record, ``time LEVEL logger: message``; ``json`` (for
production, ``--log-format json``) is one JSON object per line with the same fields. Both pass
through ``bot.visible``: a log line quotes servers, models and users, and must not drive the
terminal it lands in. Python warnings go through the same handler.

Some libraries warn about things that mean nothing to an operator of opsloop. Those records
are dropped here, each with the reason, so the first lines of ``opsloop serve`` are opsloop's.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from datetime import UTC, datetime

from bot.errors import ConfigError
from bot.visible import VisibleFormatter, visible_json

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# (logger, start of the message, why an operator does not need it)
QUIET: tuple[tuple[str, str, str], ...] = (
    (
        "slack_bolt.AsyncApp",
        "As you gave `client` as well, `token` will be unused",
        "Bolt reads SLACK_BOT_TOKEN itself; opsloop hands it the client made from that token",
    ),
    ("discord.client", "PyNaCl is not installed", "opsloop never joins a voice channel"),
    ("discord.client", "davey is not installed", "opsloop never joins a voice channel"),
    (
        "discord.state",
        "Guilds intent seems to be disabled",
        "opsloop asks for the guilds intent only where mentions are on, on purpose",
    ),
)
# (warning category, start of the message, why)
QUIET_WARNINGS: tuple[tuple[type[Warning], str, str], ...] = (
    (DeprecationWarning, "'audioop' is deprecated", "discord.py's voice support, unused"),
)


class _Quiet(logging.Filter):
    """Drops the records of ``QUIET``."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record an operator does not need."""
        for name, start, _why in QUIET:
            if record.name == name and str(record.msg).startswith(start):
                return False
        return True


class JsonFormatter(VisibleFormatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (control characters escaped)."""
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self._redacted(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = self._redacted(self.formatException(record.exc_info))
        return visible_json(json.dumps(entry, ensure_ascii=False))

    def _redacted(self, text: str) -> str:
        return self.redactor.redact(text).text if self.redactor is not None else text


def check_format(fmt: str) -> str:
    """``fmt`` if it is a known log format (else a one-line ``ConfigError``)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown log format {fmt!r}: use text or json")
    return fmt


HANDLER = "opsloop-stderr"
_chosen = ["text"]  # the root's --log-format, for commands that log more (serve)


def configure(fmt: str | None = None, *, level: int = logging.WARNING) -> None:
    """Send every log record and warning to stderr in ``fmt`` (default: the format chosen
    with ``opsloop --log-format``), from ``level`` up."""
    fmt = check_format(fmt or _chosen[0])
    _chosen[0] = fmt
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else VisibleFormatter(TEXT_FORMAT))
    handler.addFilter(_Quiet())
    handler.set_name(HANDLER)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER]:
        root.removeHandler(old)  # ours from an earlier call; others' handlers stay
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    for category, start, _why in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(start), category=category)
