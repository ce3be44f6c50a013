"""Result -> Discord messages and files (pure).

The loop's progress and outcome become ``Outgoing`` values: text of at most 2,000
characters plus optional file attachments. Each block is shown as a fenced code block and
its result; consecutive sections share messages so a turn with many small blocks does not
spend a message (and a rate-limit slot) on each. A section that would need more than
``MAX_MESSAGES`` messages is sent as a file attachment instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from adapters.discord.chunking import DISCORD_LIMIT, split_message

if TYPE_CHECKING:
    from sandbox.result import RunResult

MAX_MESSAGES = 5
MAX_FILES_PER_MESSAGE = 10  # Discord's limit of attachments on one message

_STOP_TEXT = {
    "cancelled": "Stopped, as asked.",
    "turn_limit": "Stopped: the loop reached its limit of model turns for this message.",
    "budget": "Stopped: this conversation has used its token or cost budget.",
    "model_unavailable": "Stopped: no language model could be reached. Try again later.",
}


@dataclass(frozen=True)
class Attachment:
    """A file to upload with a message."""

    filename: str
    content: bytes


@dataclass(frozen=True)
class Outgoing:
    """One Discord message: text (<= 2,000 characters) and files."""

    text: str
    files: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class BlockView:
    """A block that has run, as the surface shows it."""

    index: int
    total: int
    language: str
    code: str
    result: RunResult


def _defang(text: str) -> str:
    """Keep code or output from closing our fence early (a zero-width space breaks ``` )."""
    return text.replace("```", "`\u200b``")


def _fenced(text: str, language: str = "") -> str:
    body = _defang(text.rstrip("\n")) or " "
    return f"```{language}\n{body}\n```"


def _status(result: RunResult) -> str:
    """One line: exit status, time, and every limit that was hit."""
    if result.timed_out:
        parts = ["timed out"]
    elif result.signal:
        parts = [f"killed by signal {result.signal}"]
    else:
        parts = [f"exit {result.exit_code}"]
    parts.append(f"{result.duration_ms} ms")
    if result.memory_exceeded:
        parts.append("memory limit hit")
    if result.output_truncated:
        parts.append("output truncated")
    if result.unsafe_local:
        parts.append("ran WITHOUT a sandbox")
    return " · ".join(parts)


def _block_header(block: BlockView) -> str:
    return f"**Block {block.index}/{block.total}** · `{block.language}` · {_status(block.result)}"


def _output_sections(result: RunResult) -> list[str]:
    sections = []
    if result.stdout:
        sections.append(_fenced(result.stdout))
    if result.stderr:
        sections.append("stderr:\n" + _fenced(result.stderr))
    if not sections:
        sections.append("*(no output)*")
    return sections


def _fits(text: str) -> bool:
    return len(split_message(text)) <= MAX_MESSAGES


def render_block(block: BlockView) -> tuple[str, tuple[Attachment, ...]]:
    """A block as text (code plus result), with its output as a file when too long."""
    code = _fenced(block.code, block.language)
    output = "\n".join(_output_sections(block.result))
    text = f"{_block_header(block)}\n{code}\n{output}"
    if _fits(text):
        return text, ()
    name = f"block-{block.index}-output.txt"
    combined = block.result.stdout
    if block.result.stderr:
        combined += ("\n--- stderr ---\n" if combined else "") + block.result.stderr
    files = [Attachment(filename=name, content=combined.encode("utf-8"))]
    note = f"Output: {len(combined):,} characters, attached as `{name}`."
    text = f"{_block_header(block)}\n{code}\n{note}"
    if not _fits(text):
        code_name = f"block-{block.index}-code.{_extension(block.language)}"
        files.append(Attachment(filename=code_name, content=block.code.encode("utf-8")))
        text = f"{_block_header(block)}\nCode attached as `{code_name}`. {note}"
    return text, tuple(files)


def _extension(language: str) -> str:
    return {"python": "py", "bash": "sh", "sh": "sh"}.get(language, "txt")


def render_answer(answer: str) -> tuple[str, tuple[Attachment, ...]]:
    """The final answer as text, or as ``answer.md`` when it would need too many messages."""
    text = answer.strip() or "*(the model gave an empty answer)*"
    if _fits(text):
        return text, ()
    preview = split_message(text, limit=1500)[0]  # balanced fences, leaves room for the note
    note = f"\n\n*The full answer ({len(text):,} characters) is attached as `answer.md`.*"
    return preview + note, (Attachment(filename="answer.md", content=text.encode("utf-8")),)


def render_stopped(*, reason: str, detail: str) -> str:
    """A one-sentence explanation of why the loop stopped without an answer."""
    text = _STOP_TEXT.get(reason, f"Stopped ({reason}).")
    return f"{text} {detail}".strip() if detail and reason not in _STOP_TEXT else text


def render_reply(
    *,
    prose: str = "",
    blocks: Sequence[BlockView] = (),
    answer: str | None = None,
    stopped: tuple[str, str] | None = None,
    limit: int = DISCORD_LIMIT,
) -> list[Outgoing]:
    """Prose, blocks, then the answer (or why it stopped), as messages with attachments."""
    sections: list[str] = []
    files: list[Attachment] = []
    if prose.strip():
        text, extra = render_answer(prose)
        sections.append(text)
        files.extend(Attachment(f"progress-{a.filename}", a.content) for a in extra)
    for block in blocks:
        text, extra = render_block(block)
        sections.append(text)
        files.extend(extra)
    if answer is not None:
        text, extra = render_answer(answer)
        sections.append(text)
        files.extend(extra)
    if stopped is not None:
        sections.append(render_stopped(reason=stopped[0], detail=stopped[1]))
    texts = split_message("\n\n".join(sections), limit=limit) if sections else []
    return _attach(texts, files)


def _attach(texts: list[str], files: list[Attachment]) -> list[Outgoing]:
    """Put the files on the last message, spilling over to file-only messages past 10."""
    batches = [tuple(files[i : i + MAX_FILES_PER_MESSAGE]) for i in range(0, len(files), 10)]
    if not texts:
        return [Outgoing(text="", files=batch) for batch in batches]
    messages = [Outgoing(text=t) for t in texts]
    if batches:
        messages[-1] = Outgoing(text=texts[-1], files=batches[0])
        messages.extend(Outgoing(text="", files=batch) for batch in batches[1:])
    return messages
