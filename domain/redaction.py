"""Redaction: known secret values, their encodings and credential shapes become markers.

One pure function decides what text may leave opsloop (issue 12, item 6). A known secret
(name -> value) is replaced by ``[redacted:NAME]`` wherever it appears as itself, JSON-escaped,
URL-encoded (``quote`` and ``quote_plus``, upper- or lower-case escapes), hex, or base64
(standard and urlsafe, with or without padding, and at each of the three byte alignments it
can have inside a longer encoded stream). Credential *shapes* are replaced even when nobody
declared them: Slack ``xox?-``/``xapp-`` tokens, GitHub ``gh?_``/``github_pat_`` tokens, AWS
access key ids, PEM private key blocks and ``Bearer`` tokens.

Values shorter than ``MIN_SECRET_CHARS`` are not redacted (the word "true" in an env var
would otherwise wreck every text); ``Redactor.ignored`` names them so a caller can say so.

Inside a longer base64 stream the first and last character of a secret's encoding also
depend on its neighbours' bits, so only the characters that depend on the secret alone are
replaced: at most 4 bits of the secret stay visible at each end.

``StreamRedactor`` does the same for text that arrives in chunks. It holds back only what
could still be part of a match (a prefix of a known form, a run of token characters that
may continue, an unfinished PEM block) and releases exactly what the one-shot function would
have produced for the whole text. Spans are offsets in the input, never values.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

MIN_SECRET_CHARS = 6
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
_MARKER = re.compile(r"\[redacted:([A-Za-z0-9_.\-]{1,128})\]")

# Credential shapes. No look-arounds or anchors besides the PEM block's end of text: a shape
# must match the same way whatever surrounds it, or redacting twice would find new matches.
_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
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
SHAPE_NAMES = frozenset(name for name, _ in _SHAPES)

# Characters a token shape is made of: a run of them at the end of a chunk may continue.
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.~")
_BEARER_BEFORE = re.compile(r"(?i:bearer)[ \t]+\Z")
_PEM_HEAD = re.compile(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END[A-Z0-9 ]*PRIVATE KEY-----")
_PEM_MAYBE = re.compile(r"-----BEGIN[A-Z0-9 \-]*")
_HEAD = 8  # characters of a needle looked up with find() before comparing the rest


@dataclass(frozen=True)
class Redaction:
    """One redacted span of the input: which secret or shape, in which form, and where."""

    name: str  # the secret's name (e.g. an env var) or a shape ("slack_token")
    form: str  # plain, json, url, hex, base64, base64url, or shape
    start: int  # offsets in the input text; the value itself is never kept
    end: int


@dataclass(frozen=True)
class Redacted:
    """Redacted text and what was taken out of it."""

    text: str
    redactions: tuple[Redaction, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The names redacted, sorted, each once."""
        return tuple(sorted({r.name for r in self.redactions}))


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    name: str
    form: str
    cut_start: int  # where the whole match began (a Bearer token's "Bearer"), for streams
    protected: bool = False  # overlaps a marker already in the text: left as it is


def encoded_forms(value: str) -> list[tuple[str, str]]:
    """Every (form, text) a value is searched for, the value itself first."""
    raw = value.encode("utf-8")
    forms = [("plain", value), ("json", json.dumps(value)[1:-1])]
    forms.append(("json", json.dumps(value, ensure_ascii=False)[1:-1]))
    for quoted in (quote(value, safe=""), quote(value), quote_plus(value), quote_plus(value, "/")):
        forms.append(("url", quoted))
        forms.append(("url", re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quoted)))
    forms += [("hex", raw.hex()), ("hex", raw.hex().upper())]
    for form, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
        whole = encode(raw).decode("ascii")
        forms += [(form, whole), (form, whole.rstrip("="))]
        for offset in (1, 2):  # inside a longer stream: only the characters of the secret alone
            shifted = encode(b"\0" * offset + raw).decode("ascii")
            first, last = -(-8 * offset // 6), (8 * offset + 8 * len(raw)) // 6
            forms.append((form, shifted[first:last]))
        forms.append((form, whole[: 8 * len(raw) // 6]))
    seen: set[str] = set()
    unique = []
    for form, text in forms:
        if text and text not in seen:
            seen.add(text)
            unique.append((form, text))
    return unique


class Redactor:
    """Redacts known secret values, their encoded forms and credential shapes."""

    def __init__(self, secrets: Mapping[str, str], *, min_chars: int = MIN_SECRET_CHARS) -> None:
        for name in secrets:
            if not _NAME.fullmatch(name):
                raise ValueError(f"secret name {name!r} is not [A-Za-z0-9_.-]{{1,128}}")
        self.ignored = tuple(sorted(n for n, v in secrets.items() if len(v) < min_chars))
        needles: dict[str, tuple[str, str]] = {}
        for name in sorted(secrets, key=lambda n: (-len(secrets[n]), n)):
            if len(secrets[name]) >= min_chars:
                for form, text in encoded_forms(secrets[name]):
                    if len(text) >= min_chars:  # a short core would match everywhere
                        needles.setdefault(text, (name, form))
        self._needles = needles
        self.names = frozenset(secrets) - frozenset(self.ignored)
        self._markers = frozenset(f"[redacted:{n}]" for n in self.names | SHAPE_NAMES)
        self._targets = sorted({*needles, *self._markers})

    def redact(self, text: str) -> Redacted:
        """``text`` with every secret, encoded secret and credential shape replaced."""
        spans = _merge(self._spans(text))
        out: list[str] = []
        at = 0
        for span in spans:
            out += [text[at : span.start], f"[redacted:{span.name}]"]
            at = span.end
        out.append(text[at:])
        found = tuple(Redaction(s.name, s.form, s.start, s.end) for s in spans)
        return Redacted(text="".join(out), redactions=found)

    def stream(self) -> StreamRedactor:
        """A redactor for text that arrives in chunks."""
        return StreamRedactor(self)

    def _spans(self, text: str) -> list[_Span]:
        """Matches to redact: every match that does not overlap a marker of a known name."""
        return [s for s in self._matches(text) if not s.protected]

    def _matches(self, text: str) -> list[_Span]:
        """Every match, those overlapping a known marker included (marked ``protected``)."""
        markers = [m.span() for m in _MARKER.finditer(text) if m.group() in self._markers]

        def protected(start: int, end: int) -> bool:
            return any(start < e and b < end for b, e in markers)

        found: list[_Span] = []
        for needle, (name, form) in self._needles.items():
            at = text.find(needle)
            while at >= 0:
                end = at + len(needle)
                found.append(_Span(at, end, name, form, at, protected(at, end)))
                at = text.find(needle, at + 1)
        for name, pattern in _SHAPES:
            match = pattern.search(text)
            while match:
                start, end = match.span("secret" if "secret" in pattern.groupindex else 0)
                skip = protected(match.start(), match.end())
                found.append(_Span(start, end, name, "shape", match.start(), skip))
                # A match dropped for a marker must not hide one that starts inside it.
                match = pattern.search(text, match.start() + 1 if skip else match.end())
        return found

    def safe_cut(self, text: str) -> int:
        """How much of ``text`` no later text can change the redaction of."""
        cut = min(self._partial_start(text), _run_start(text), _pem_hold(text))
        blocking = [(s.cut_start, s.end) for s in self._matches(text)]
        blocking += [m.span() for m in _MARKER.finditer(text) if m.group() in self._markers]
        moved = True
        while moved:
            moved = False
            while (
                0 < cut < len(text) and text[cut - 1] in _TOKEN_CHARS and text[cut] in _TOKEN_CHARS
            ):
                cut -= 1
            for start, end in blocking:
                if start < cut < end:
                    cut, moved = start, True
        return cut

    def _partial_start(self, text: str) -> int:
        """Start of the longest end of ``text`` that is a proper prefix of a needle or marker."""
        end, best = len(text), len(text)
        for target in self._targets:
            low = max(0, end - len(target) + 1)
            head = target[:_HEAD]
            at = text.find(head, low)  # a long partial starts with the whole head
            while 0 <= at < best and at + len(head) <= end:
                if target.startswith(text[at:]):
                    best = at
                    break
                at = text.find(head, at + 1)
            for at in range(max(low, end - len(head) + 1), min(best, end)):  # a short one
                if target.startswith(text[at:]):
                    best = at
                    break
        return best


class StreamRedactor:
    """Redacts text arriving in chunks, holding back only what could still be a match."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._pending = ""
        self._offset = 0  # input offset of the first pending character

    @property
    def held(self) -> int:
        """How many input characters are held back now."""
        return len(self._pending)

    def feed(self, chunk: str) -> Redacted:
        """Take the next chunk; return the redacted text that is now final."""
        self._pending += chunk
        return self._release(self._redactor.safe_cut(self._pending))

    def flush(self) -> Redacted:
        """Release everything held back (the stream ended)."""
        return self._release(len(self._pending))

    def _release(self, cut: int) -> Redacted:
        if cut == 0:
            return Redacted(text="")
        done = self._redactor.redact(self._pending[:cut])
        shift = self._offset
        moved = tuple(
            Redaction(r.name, r.form, r.start + shift, r.end + shift) for r in done.redactions
        )
        self._pending, self._offset = self._pending[cut:], self._offset + cut
        return Redacted(text=done.text, redactions=moved)


def redact(text: str, *, secrets: Mapping[str, str], min_chars: int = MIN_SECRET_CHARS) -> Redacted:
    """``text`` with ``secrets`` (name -> value), their encodings and credential shapes replaced."""
    return Redactor(secrets, min_chars=min_chars).redact(text)


def joined(parts: Iterable[Redacted]) -> Redacted:
    """Chunks of one stream as one result (what the one-shot function returns)."""
    items = list(parts)
    return Redacted(
        text="".join(p.text for p in items),
        redactions=tuple(r for p in items for r in p.redactions),
    )


def _merge(spans: list[_Span]) -> list[_Span]:
    """Overlapping spans as one, named after the earliest (then longest) of them."""
    merged: list[_Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end, s.name, s.form)):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            if span.end > last.end:
                merged[-1] = dataclasses.replace(last, end=span.end)
        else:
            merged.append(span)
    return merged


def _run_start(text: str) -> int:
    """Start of the run of token characters at the end (with a ``Bearer`` before it)."""
    at = len(text)
    while at > 0 and text[at - 1] in _TOKEN_CHARS:
        at -= 1
    bearer = _BEARER_BEFORE.search(text, max(0, at - 64), at)
    return bearer.start() if bearer else at


def _pem_hold(text: str) -> int:
    """Start of a private key block that has not ended yet, or of what may become one."""
    for head in _PEM_HEAD.finditer(text):
        if not _PEM_END.search(text, head.end()):
            return head.start()
    last = text.rfind("-----BEGIN")
    if last >= 0 and _PEM_MAYBE.fullmatch(text, last):
        return last
    return len(text)
