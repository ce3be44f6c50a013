"""What redaction looks for: the forms a known secret takes, and credential shapes (pure).

``domain.redaction`` searches text for these. A known value is looked for as itself and in
the encodings a tool, a library or careless code produces: JSON-escaped, URL-encoded
(``quote``/``quote_plus``, either case of escapes, or every byte escaped), ``\\xNN``
escapes, hex (either case), base64 (standard and urlsafe, padded or not, and at each of the
three byte alignments it can have inside a longer stream), and reversed. Every form is
looked for with whitespace ignored (``Squeezed``), so a value split over two prints, a
base64 wrapped at 76 columns or hex grouped by ``xxd`` is found too.

Credential shapes are matched even when nobody declared them. They have no look-arounds or
anchors besides the PEM block's end of text: a shape must match the same way whatever
surrounds it, or redacting twice would find new matches.
"""

from __future__ import annotations

import base64
import json
import re
from bisect import bisect_right
from itertools import accumulate
from urllib.parse import quote, quote_plus

MIN_SECRET_CHARS = 6
SPACE = re.compile(r"\s+")

SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("slack_token", re.compile(r"xox[abposr]-[A-Za-z0-9-]{10,}|xapp-[0-9]-[A-Za-z0-9-]{10,}")),
    ("github_token", re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}")),
    ("aws_access_key_id", re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{16}")),
    (
        "private_key",
        re.compile(
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----"
            r"(?:.*?-----END[A-Z0-9 ]*PRIVATE KEY-----|.*\Z)",  # a cut block is still a key
            re.DOTALL,
        ),
    ),
    ("bearer_token", re.compile(r"(?i:bearer)[ \t]+(?P<secret>[A-Za-z0-9\-._~+/]{16,}=*)")),
)
SHAPE_NAMES = frozenset(name for name, _ in SHAPES)

# Characters a token shape is made of: a run of them at the end of a chunk may continue.
TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.~")
_BEARER_BEFORE = re.compile(r"(?i:bearer)[ \t]+\Z")
_PEM_HEAD = re.compile(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END[A-Z0-9 ]*PRIVATE KEY-----")
_PEM_MAYBE = re.compile(r"-----BEGIN[A-Z0-9 \-]*")


def encoded_forms(value: str) -> list[tuple[str, str]]:
    """Every (form, text) a value is searched for, the value itself first."""
    raw = value.encode("utf-8")
    forms = [("plain", value), ("json", json.dumps(value)[1:-1])]
    forms.append(("json", json.dumps(value, ensure_ascii=False)[1:-1]))
    for quoted in (quote(value, safe=""), quote(value), quote_plus(value), quote_plus(value, "/")):
        forms.append(("url", quoted))
        forms.append(("url", re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quoted)))
    every = "".join(f"%{b:02X}" for b in raw)  # every byte escaped, letters too
    forms += [("url", every), ("url", every.lower())]
    forms += [("escaped", "".join(f"\\x{b:02x}" for b in raw))]
    forms += [("hex", raw.hex()), ("hex", raw.hex().upper())]
    for form, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
        whole = encode(raw).decode("ascii")
        forms += [(form, whole), (form, whole.rstrip("="))]
        for offset in (1, 2):  # inside a longer stream: only the characters of the secret alone
            shifted = encode(b"\0" * offset + raw).decode("ascii")
            first, last = -(-8 * offset // 6), (8 * offset + 8 * len(raw)) // 6
            forms.append((form, shifted[first:last]))
        forms.append((form, whole[: 8 * len(raw) // 6]))
    forms.append(("reversed", value[::-1]))
    seen: set[str] = set()
    unique = []
    for form, text in forms:
        if text and text not in seen:
            seen.add(text)
            unique.append((form, text))
    return unique


class Squeezed:
    """A text without its whitespace, and the way back to the text's own offsets.

    The way back is a count of non-whitespace characters at every ``STEP`` characters of
    the source, built when it is first needed (when something was found), so text without
    a secret costs one ``split``.
    """

    STEP = 256

    def __init__(self, source: str) -> None:
        self.source = source
        self.spaced = SPACE.search(source) is not None
        # str.split() and re's \s agree on what whitespace is (str.isspace).
        self.text = "".join(source.split()) if self.spaced else source
        self._starts: list[int] = []  # squeezed offset of each STEP of the source

    def start(self, at: int) -> int:
        """Offset in the source of the squeezed character at ``at``."""
        if not self.spaced:
            return at
        if not self._starts:
            self._starts = [
                0,
                *accumulate(self._kept(at) for at in range(0, len(self.source), self.STEP)),
            ]
        step = bisect_right(self._starts, at) - 1
        base, left = step * self.STEP, at - self._starts[step]
        for offset, char in enumerate(self.source[base : base + self.STEP]):
            if not char.isspace():
                if not left:
                    return base + offset
                left -= 1
        raise IndexError(at)

    def end(self, at: int) -> int:
        """Offset in the source just after the squeezed character before ``at``."""
        return self.start(at - 1) + 1

    def _kept(self, at: int) -> int:
        return sum(map(len, self.source[at : at + self.STEP].split()))


def run_start(text: str) -> int:
    """Start of the run of token characters at the end (with a ``Bearer`` before it)."""
    at = len(text)
    while at > 0 and text[at - 1] in TOKEN_CHARS:
        at -= 1
    bearer = _BEARER_BEFORE.search(text, max(0, at - 64), at)
    return bearer.start() if bearer else at


def pem_hold(text: str) -> int:
    """Start of a private key block that has not ended yet, or of what may become one."""
    for head in _PEM_HEAD.finditer(text):
        if not _PEM_END.search(text, head.end()):
            return head.start()
    last = text.rfind("-----BEGIN")
    if last >= 0 and _PEM_MAYBE.fullmatch(text, last):
        return last
    return len(text)
