"""Redaction: known secret values, their encodings and credential shapes become markers.

One pure function decides what text may leave opsloop (issue 12, item 6): every exit (the
prompt, chat, the event log, the jail's tool results) calls ``Redactor.redact`` of the one
redactor the composition root builds. A known secret (name -> value) is replaced by
``[redacted:NAME]`` wherever it appears in one of the forms of
``domain.redaction_forms.encoded_forms``, whitespace ignored; credential shapes are
replaced even when nobody declared them (``[redacted:slack_token]``, …).

Values of fewer than ``MIN_SECRET_CHARS`` characters besides whitespace are not redacted
(the word "true" in an env var would otherwise wreck every text, and an empty one would
match everywhere); ``Redactor.ignored`` names them so a caller can say so.

Inside a longer base64 stream the first and last character of a secret's encoding also
depend on its neighbours' bits, so only the characters that depend on the secret alone are
replaced: at most 4 bits of the secret stay visible at each end.

A marker of a known name already in the text is left alone, so redacting twice changes
nothing more; markers are at most ``11 + 128`` characters and replace at least
``MIN_SECRET_CHARS``, so redacted text is at most a fixed factor longer than its input.

``StreamRedactor`` does the same for text that arrives in chunks. It holds back only what
could still be part of a match (a prefix of a known form, a run of token characters that
may continue, an unfinished PEM block) and releases exactly what the one-shot function would
have produced for the whole text. Spans are offsets in the input, never values.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from domain.redaction_forms import (
    MIN_SECRET_CHARS,
    SHAPE_NAMES,
    SHAPES,
    SPACE,
    TOKEN_CHARS,
    Squeezed,
    encoded_forms,
    pem_hold,
    run_start,
)

__all__ = [
    "MIN_SECRET_CHARS",
    "SHAPE_NAMES",
    "Redacted",
    "Redaction",
    "Redactor",
    "StreamRedactor",
    "encoded_forms",
    "joined",
    "redact",
]

_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
_MARKER = re.compile(r"\[redacted:([A-Za-z0-9_.\-]{1,128})\]")
_HEAD = 8  # characters of a needle looked up with find() before comparing the rest


@dataclass(frozen=True)
class Redaction:
    """One redacted span of the input: which secret or shape, in which form, and where."""

    name: str  # the secret's name (e.g. an env var) or a shape ("slack_token")
    form: str  # plain, json, url, escaped, hex, base64, base64url, reversed, or shape
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


class Redactor:
    """Redacts known secret values, their encoded forms and credential shapes."""

    def __init__(self, secrets: Mapping[str, str], *, min_chars: int = MIN_SECRET_CHARS) -> None:
        for name in secrets:
            if not _NAME.fullmatch(name):
                raise ValueError(f"secret name {name!r} is not [A-Za-z0-9_.-]{{1,128}}")
        # Whitespace is ignored when looking, so it does not count towards the minimum.
        short = {n for n, v in secrets.items() if len(SPACE.sub("", v)) < min_chars}
        self.ignored = tuple(sorted(short))
        needles: dict[str, tuple[str, str]] = {}
        for name in sorted(secrets, key=lambda n: (-len(secrets[n]), n)):
            if name not in short:
                for form, text in encoded_forms(secrets[name]):
                    squeezed = SPACE.sub("", text)  # looked for with whitespace ignored
                    if len(squeezed) >= min_chars:  # a short core would match everywhere
                        needles.setdefault(squeezed, (name, form))
        self._needles = needles
        self._finder = _Finder(needles)
        self.names = frozenset(secrets) - frozenset(self.ignored)
        self._markers = frozenset(f"[redacted:{n}]" for n in self.names | SHAPE_NAMES)
        self._needle_prefixes = _Prefixes(needles)
        self._marker_prefixes = _Prefixes(self._markers)

    @property
    def longest_marker(self) -> int:
        """Characters of the longest marker this redactor writes."""
        return max(len(m) for m in self._markers)

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

    def redact_value(self, value: Any) -> tuple[Any, tuple[str, ...]]:
        """JSON-like data (text, dicts, lists) with every string redacted, keys included,
        and the names taken out."""
        names: set[str] = set()

        def walk(item: Any) -> Any:
            if isinstance(item, str):
                done = self.redact(item)
                names.update(done.names)
                return done.text
            if isinstance(item, dict):
                return {walk(str(k)): walk(v) for k, v in item.items()}
            if isinstance(item, list | tuple):
                return [walk(v) for v in item]
            return item

        return walk(value), tuple(sorted(names))

    def markers_in(self, text: str) -> tuple[str, ...]:
        """The names whose markers ``text`` holds (known names and shapes), sorted, once."""
        return tuple(
            sorted({m.group(1) for m in _MARKER.finditer(text) if m.group() in self._markers})
        )

    def clean(self, **fields: str) -> tuple[dict[str, str], dict[str, list[str]]]:
        """Text fields of one record, redacted, and where markers are: field -> names."""
        texts = {key: self.redact(value).text for key, value in fields.items()}
        where = {
            key: list(found) for key, text in texts.items() if (found := self.markers_in(text))
        }
        return texts, where

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
        view = Squeezed(text)
        for at, needle in self._finder.find(view.text):
            name, form = self._needles[needle]
            start, end = view.start(at), view.end(at + len(needle))
            found.append(_Span(start, end, name, form, start, protected(start, end)))
        for name, pattern in SHAPES:
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
        cut = min(self._partial_start(text), run_start(text), pem_hold(text))
        blocking = [(s.cut_start, s.end) for s in self._matches(text)]
        blocking += [m.span() for m in _MARKER.finditer(text) if m.group() in self._markers]
        moved = True
        while moved:
            moved = False
            while 0 < cut < len(text) and text[cut - 1] in TOKEN_CHARS and text[cut] in TOKEN_CHARS:
                cut -= 1
            for start, end in blocking:
                if start < cut < end:
                    cut, moved = start, True
        return cut

    def _partial_start(self, text: str) -> int:
        """Start of the longest end of ``text`` that could still grow into a match: a prefix
        of a needle (whitespace ignored) or of a marker."""
        view = Squeezed(text)
        squeezed = self._needle_prefixes.start(view.text)
        at = view.start(squeezed) if squeezed < len(view.text) else len(text)
        return min(at, self._marker_prefixes.start(text))


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


class _Finder:
    """Where needles occur in a text: by one ``find`` per needle in a long text, by a look-up
    of each position's first characters in a short one (a streamed chunk)."""

    SHORT = 512  # characters; below this, looking up each position is faster

    def __init__(self, needles: Iterable[str]) -> None:
        # Shortest first, each with a shorter needle it contains (its core), if any: a
        # needle is looked for only where its core was found (base64 with its padding, say).
        ordered = sorted(needles, key=lambda n: (len(n), n))
        self.order = [
            (n, next((c for c in ordered[:i] if c in n), None)) for i, n in enumerate(ordered)
        ]
        self.key = min([4, *(len(n) for n in ordered)])  # characters looked up per position
        self.by_key: dict[str, list[str]] = {}
        for needle in ordered:
            self.by_key.setdefault(needle[: self.key], []).append(needle)

    def find(self, text: str) -> Iterator[tuple[int, str]]:
        """(offset, needle) of every occurrence, overlapping ones included."""
        if len(text) < self.SHORT:
            for at in range(len(text) - self.key + 1):
                for needle in self.by_key.get(text[at : at + self.key], ()):
                    if text.startswith(needle, at):
                        yield at, needle
            return
        seen: set[str] = set()
        for needle, core in self.order:
            if core is not None and core not in seen:
                continue  # it holds a shorter form, which is not there
            at = text.find(needle)
            if at >= 0:
                seen.add(needle)
            while at >= 0:
                yield at, needle
                at = text.find(needle, at + 1)


class _Prefixes:
    """Every prefix of some targets, to find where the end of a text could still grow into
    one: short prefixes in a set, longer ones by their first ``_HEAD`` characters."""

    def __init__(self, targets: Iterable[str]) -> None:
        self.short: set[str] = set()
        self.by_head: dict[str, list[str]] = {}
        self.longest = 0
        for target in targets:
            self.longest = max(self.longest, len(target))
            self.short.update(target[:k] for k in range(1, min(len(target) - 1, _HEAD - 1) + 1))
            if len(target) >= _HEAD:
                self.by_head.setdefault(target[:_HEAD], []).append(target)

    def start(self, text: str) -> int:
        """Start of the longest end of ``text`` that is a proper prefix of a target."""
        end = len(text)
        low = max(0, end - self.longest + 1)
        for at in range(low, end - _HEAD + 1):
            targets = self.by_head.get(text[at : at + _HEAD])
            if targets and any(len(t) > end - at and t.startswith(text[at:]) for t in targets):
                return at
        for at in range(max(low, end - _HEAD + 1), end):
            if text[at:] in self.short:
                return at
        return end
