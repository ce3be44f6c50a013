"""Parsing ``<helpers>`` blocks out of a model's reply (pure, never raises).

The protocol the system prompt teaches::

    <helpers>                      python (the default)
    print("hello")
    </helpers>
    <helpers lang="bash">          also lang='bash' or lang=bash; py -> python, sh -> bash
    ls -la /workspace
    </helpers>

Rules, in the order they apply:

- An opening tag is ``<helpers>`` with optional ``name=value`` attributes (any case). Only
  ``lang`` (or ``language``) is read; a language we do not know is kept as written, so the
  loop can refuse the block with a clear reason. An opening tag written inside backticks
  (`` `<helpers>` ``) is a quotation in prose, not a tag.
- **Closing rule.** A block ends at the first ``</helpers>`` that is *not inside a quoted
  string on its own line*: the part of that line before the tag (after the opening tag, for a
  block's first line) is scanned for ``'`` and ``"`` quotes, with backslash escapes (bash:
  none inside single quotes), and a ``#`` comment (at a line's start or after whitespace)
  ends the scan. So
  ``print("</helpers>")`` does not close a block, while a tag at the start of a line (the
  usual layout) always does. Code that must print the tag at a line's start, e.g. inside a
  triple-quoted string, should build it from parts: ``"</" + "helpers>"``.
- An opening tag with no closing tag is left as plain text, and a problem is reported so the
  model can be told on its next turn (``ParsedReply.unclosed`` is then true). A
  ``</helpers>`` outside any block, and an opening tag on its own line inside a block (a
  forgotten closing tag), are reported too.
- Inside a block, a Markdown fence line first and/or last (```` ```python ```` … ```` ``` ````)
  is removed; without a ``lang`` attribute the fence's language is used. The code is then
  dedented and blank lines around it are dropped. An empty block is ignored and reported.
- ``ParsedReply.text`` is the prose outside the blocks: each piece between blocks trimmed,
  empty pieces left out, the rest joined by a blank line. Empty fences left behind when a
  model wrapped its blocks in a Markdown fence are removed.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

SUPPORTED_LANGUAGES = ("python", "bash")
_ALIASES = {
    "python": "python",
    "python3": "python",
    "py": "python",
    "bash": "bash",
    "sh": "bash",
    "shell": "bash",
}

_ATTR = r"""\s+[\w-]+\s*=\s*(?:"[^"\n]*"|'[^'\n]*'|[^\s"'<>]+)"""
_OPEN = re.compile(rf"<helpers(?P<attrs>(?:{_ATTR})*)\s*>", re.I)
_OPEN_AT_LINE_START = re.compile(rf"^[ \t]*<helpers(?:{_ATTR})*\s*>", re.I | re.M)
_CLOSE = re.compile(r"</helpers\s*>", re.I)
_LANG = re.compile(r"""\b(?:lang|language)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+-]*)[ \t]*$")
_EMPTY_FENCE = re.compile(r"\n*^[ \t]*```[\w+-]*[ \t]*\n(?:[ \t]*\n)*[ \t]*```[ \t]*$\n*", re.M)


@dataclass(frozen=True)
class HelperBlock:
    """One block of code the model asked to run."""

    index: int  # 1-based
    language: str
    code: str


@dataclass(frozen=True)
class ParsedReply:
    """A reply split into its blocks and the prose around them."""

    blocks: tuple[HelperBlock, ...]
    text: str  # the reply without its blocks: what the user sees as progress or answer
    problems: tuple[str, ...] = ()  # e.g. an unclosed tag, told to the model next turn
    unclosed: bool = False  # an opening tag was never closed: the model meant to run something


def normalise_language(name: str) -> str:
    """``py``/``python3`` -> ``python``, ``sh``/``shell`` -> ``bash``; others kept as written."""
    stripped = name.strip()
    return _ALIASES.get(stripped.lower(), stripped)


def format_block(*, language: str, code: str) -> str:
    """The canonical text of a block, as the system prompt shows it (parses back to itself)."""
    return f'<helpers lang="{language}">\n{code}\n</helpers>'


def parse_helpers(reply: str) -> ParsedReply:
    """Split ``reply`` into helper blocks and outside text (rules in the module docstring)."""
    blocks: list[HelperBlock] = []
    pieces: list[str] = []
    problems: list[str] = []
    pos = 0  # start of the outside text not yet consumed
    search = 0  # where to look for the next opening tag
    unclosed = False
    while (opening := _OPEN.search(reply, search)) is not None:
        if _in_backticks(reply, opening.start(), opening.end()):
            search = opening.end()
            continue
        attrs = opening.group("attrs") or ""
        declared = _declared_language(attrs)
        closing = _find_close(reply, start=opening.end(), language=declared or "python")
        if closing is None:
            problems.append(_unclosed_problem(reply, opening.start(), opening.end()))
            unclosed = True
            break
        pieces.append(reply[pos : opening.start()])
        language, code = _block_body(reply[opening.end() : closing.start()], declared)
        if code:
            blocks.append(HelperBlock(index=len(blocks) + 1, language=language, code=code))
            if _OPEN_AT_LINE_START.search(code):
                problems.append(
                    f"Block {len(blocks)} contains an opening <helpers> tag on a line of its "
                    "own; did you forget a </helpers> before it? It was treated as one block."
                )
        else:
            problems.append(
                f"A <helpers> block at line {_line_of(reply, opening.start())} was empty and "
                "was ignored."
            )
        pos = search = closing.end()
    pieces.append(reply[pos:])
    # the tail after an unclosed tag is code-like text; its closing tags were already explained
    problems.extend(_stray_closing_problems(pieces[:-1] if unclosed else pieces))
    if not reply.strip():
        problems.append("Your reply was empty; answer the user or run a helper block.")
    return ParsedReply(
        blocks=tuple(blocks), text=_join_prose(pieces), problems=tuple(problems), unclosed=unclosed
    )


def first_block_end(reply: str) -> int | None:
    """Where the first complete block of ``reply`` ends (just after its closing tag), by
    ``parse_helpers``'s rules; None while no block has closed."""
    search = 0
    while (opening := _OPEN.search(reply, search)) is not None:
        if _in_backticks(reply, opening.start(), opening.end()):
            search = opening.end()
            continue
        declared = _declared_language(opening.group("attrs") or "")
        closing = _find_close(reply, start=opening.end(), language=declared or "python")
        return None if closing is None else closing.end()
    return None


def _declared_language(attrs: str) -> str | None:
    found = _LANG.search(attrs)
    if found is None:
        return None
    value = next(group for group in found.groups() if group is not None)
    return normalise_language(value) if value.strip() else None


def _in_backticks(reply: str, start: int, end: int) -> bool:
    return reply[start - 1 : start] == "`" and reply[end : end + 1] == "`"


def _find_close(reply: str, *, start: int, language: str) -> re.Match[str] | None:
    """The first closing tag after ``start`` that is outside a quoted string on its line."""
    # One forward pass: the quote state is carried along a line from one candidate tag to
    # the next, so a line full of quoted tags costs linear, not quadratic, time.
    scan = _LineScan(reply, start=start, backslash_in_single=language != "bash")
    for closing in _CLOSE.finditer(reply, start):
        if not scan.inside_string_at(closing.start()):
            return closing
    return None


class _LineScan:
    """Whether a quoted string is open at a position, scanning each line from its start."""

    def __init__(self, text: str, *, start: int, backslash_in_single: bool) -> None:
        self.text = text
        self.backslash_in_single = backslash_in_single  # bash: no escapes in '...'
        self.line_start = self.pos = start
        self.quote: str | None = None
        self.comment = False

    def inside_string_at(self, end: int) -> bool:
        newline = self.text.rfind("\n", self.pos, end)
        if newline >= 0:  # a new line: its quote state starts afresh
            self.line_start = self.pos = newline + 1
            self.quote, self.comment = None, False
        text = self.text
        while self.pos < end and not self.comment:
            char = text[self.pos]
            if self.quote is None:
                if char in "\"'":
                    self.quote = char
                elif char == "#" and (self.pos == self.line_start or text[self.pos - 1].isspace()):
                    self.comment = True  # quotes in a comment mean nothing
            elif char == "\\" and (self.quote == '"' or self.backslash_in_single):
                self.pos += 1
            elif char == self.quote:
                self.quote = None
            self.pos += 1
        self.pos = max(self.pos, end)
        return self.quote is not None and not self.comment


def _block_body(raw: str, declared: str | None) -> tuple[str, str]:
    """The language and the cleaned code of a block's raw content."""
    lines = _trim_blank(raw.split("\n"))
    fence_language = ""
    if lines and (opening := _FENCE.match(lines[0])):
        fence_language = opening.group(2)
        lines = _trim_blank(lines[1:])
    if lines and (closing := _FENCE.match(lines[-1])) and not closing.group(2):
        lines = _trim_blank(lines[:-1])
    # models often indent a whole block; Python would refuse it, so remove the common indent
    code = textwrap.dedent("\n".join(lines)).rstrip()
    language = declared or (normalise_language(fence_language) if fence_language else "python")
    return language, code


def _trim_blank(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _line_of(reply: str, index: int) -> int:
    return reply.count("\n", 0, index) + 1


def _unclosed_problem(reply: str, start: int, end: int) -> str:
    quoted = any(True for _ in _CLOSE.finditer(reply, end))
    hint = " (a </helpers> inside a quoted string on its line does not count)" if quoted else ""
    return (
        f"Your reply opened a <helpers> block at line {_line_of(reply, start)} but never closed "
        f"it{hint}, so it was not run and was treated as text. End every block with </helpers> "
        "on its own line."
    )


def _stray_closing_problems(pieces: list[str]) -> list[str]:
    strays = sum(
        1
        for piece in pieces
        for tag in _CLOSE.finditer(piece)
        if not _in_backticks(piece, tag.start(), tag.end())
    )
    if not strays:
        return []
    return [
        f"Your reply has {strays} </helpers> tag(s) outside any block; they were treated as "
        "text. If a block ended early, a </helpers> at the start of a line inside your code "
        "closed it: build that text from parts instead."
    ]


def _join_prose(pieces: list[str]) -> str:
    joined = "\n\n".join(piece.strip() for piece in pieces if piece.strip())
    if "```" in joined:
        joined = _EMPTY_FENCE.sub("\n\n", joined).strip()
    return joined


_HOLD_LIMIT = 256  # an opening tag longer than this is prose, as far as streaming goes


class ProseStream:
    """The prose of a reply as it streams in, blocks left out by ``parse_helpers``'s rules.

    Surfaces show a model's prose while it streams and each block's code later, when it
    runs. Only text whose meaning can no longer change is released: a tail that may still
    become an opening tag is held back, and so is a block until its closing tag arrives (by
    the closing rule). An opening tag that never closes is prose after all, as it is for
    ``parse_helpers``: ``flush`` releases it.
    """

    def __init__(self) -> None:
        self._text = ""
        self._done = 0  # everything before this is released or belongs to a block
        self._block: tuple[int, int, str] | None = None  # (tag start, code start, language)
        self._eat_newline = False  # the newline that ends a closing tag's line is not prose

    def feed(self, chunk: str) -> str:
        """Add ``chunk``; return the prose that became certain."""
        before = len(self._text)
        self._text += chunk
        shown: list[str] = []
        while self._step(shown, before):
            pass
        return "".join(shown)

    def _step(self, shown: list[str], before: int) -> bool:
        """Release or consume one stretch; True when there may be more to do now."""
        text = self._text
        if self._block is not None:
            _, code_start, language = self._block
            # The quote-aware scan runs only once a candidate tag has arrived.
            if _CLOSE.search(text, max(code_start, before - 16)) is None:
                return False
            closing = _find_close(text, start=code_start, language=language)
            if closing is None:
                return False
            self._done, self._block, self._eat_newline = closing.end(), None, True
            return True
        if self._eat_newline and self._done < len(text):
            self._eat_newline = False
            if text[self._done] == "\n":
                self._done += 1
        opening = _OPEN.search(text, self._done)
        if opening is not None and opening.end() < len(text):  # the char after it is known
            if _in_backticks(text, opening.start(), opening.end()):
                shown.append(text[self._done : opening.end()])
            else:
                shown.append(text[self._done : opening.start()])
                language = _declared_language(opening.group("attrs") or "") or "python"
                self._block = (opening.start(), opening.end(), language)
            self._done = opening.end()
            return True
        cut = opening.start() if opening is not None else self._safe_end()
        shown.append(text[self._done : cut])
        self._done = cut
        return False

    def _safe_end(self) -> int:
        """Where released text must stop: before a tail that may still become an opening tag."""
        text = self._text
        start = text.rfind("<", max(self._done, len(text) - _HOLD_LIMIT))
        if start < 0:
            return len(text)
        tail = text[start:]
        if "<helpers".startswith(tail.lower()) or (
            tail[:8].lower() == "<helpers" and ">" not in tail
        ):
            return start
        return len(text)

    def flush(self) -> str:
        """The end of the reply: what was held back, and an unclosed block as prose."""
        start = self._block[0] if self._block is not None else self._done
        rest = self._text[start:]
        self._text, self._done, self._block, self._eat_newline = "", 0, None, False
        return rest
