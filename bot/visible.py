"""Untrusted text made safe for a terminal: control characters are shown, never obeyed (pure).

Block output, model text, user text and whatever the event store holds can carry escape
sequences (clear the screen, move the cursor, set the window title, write the clipboard with
OSC 52) or reorder what is shown (Unicode bidi controls, "Trojan Source"). Everything opsloop
writes to a terminal on behalf of someone else goes through ``visible`` first, so an auditor
sees exactly which bytes were there instead of what they would have done.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from domain.redaction import Redactor

# C0 controls but tab and newline (a CRLF pair is a newline); DEL; C1 controls (0x9b is a
# one-byte CSI to some terminals); the bidi controls; lone surrogates (a JSON string can carry
# one, and printing it raises); the invisible tag characters that can smuggle hidden text.
_CHARS = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f"
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff\U000e0000-\U000e007f"
)
_ANY = re.compile(f"[{_CHARS}]")
_PLAIN_ASCII = bytes(range(0x20, 0x7F)) + b"\t\n"  # what ASCII text may hold and stay as it is
_UNSAFE = re.compile(f"\r\n|[{_CHARS}]")
# The same characters in JSON text, but C0: json.dumps escapes those inside strings, and
# outside strings tab, newline and carriage return are JSON's own whitespace.
_UNSAFE_IN_JSON = re.compile(
    "[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff\U000e0000-\U000e007f]"
)


def _shown(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\r\n":
        return "\n"
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # the Control Pictures block: "\x1b" -> "␛"
    if code == 0x7F:
        return "\u2421"  # ␡
    if code <= 0x9F:
        return f"\\x{code:02x}"
    return f"<U+{code:04X}>"


def visible(text: str) -> str:
    """``text`` with every control character a terminal could obey written as a visible sign."""
    # Fast paths for text with nothing to show (nearly all of it): a C-speed byte check for
    # ASCII, a one-class search otherwise. A replay of 10,000 events calls this 60,000 times.
    if text.isascii() and not text.encode("ascii").translate(None, _PLAIN_ASCII):
        return text
    return _UNSAFE.sub(_shown, text) if _ANY.search(text) else text


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code > 0xFFFF:  # JSON spells a character outside the BMP as a surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def visible_json(encoded: str) -> str:
    """JSON text with those characters written as ``\\u`` escapes: the same value, parsed."""
    if encoded.isascii() and "\x7f" not in encoded:  # the common case, checked at C speed
        return encoded
    return _UNSAFE_IN_JSON.sub(_json_escape, encoded)


class VisibleFormatter(logging.Formatter):
    """A log formatter whose lines (tracebacks included) pass through ``visible``, and through
    the process's redactor once one is installed (``redact_logs``): a provider's error or a
    traceback quoting a request never writes a secret to the log."""

    redactor: Redactor | None = None

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record, its secrets taken out, made visible."""
        line = super().format(record)
        if self.redactor is not None:
            line = self.redactor.redact(line).text
        return visible(line)


def redact_logs(redactor: Redactor) -> None:
    """Take the process's secrets out of every line its visible log handlers write."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, VisibleFormatter):
            handler.formatter.redactor = redactor


def visible_stderr(fmt: str = "%(message)s") -> logging.Handler:
    """A stderr log handler with a ``VisibleFormatter`` (log lines quote servers and models)."""
    handler = logging.StreamHandler()
    handler.setFormatter(VisibleFormatter(fmt))
    return handler
