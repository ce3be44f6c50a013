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
from typing import TYPE_CHECKING, assert_never

from adapters.discord.chunking import DISCORD_LIMIT, split_message
from bot.surface import ApprovalRequest, CommandName, CommandReply, DecisionReply, Totals

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


APPROVE_PREFIX = "opsloop_approve:"  # button custom_ids (public names): prefix + request id
DENY_PREFIX = "opsloop_deny:"


@dataclass(frozen=True)
class ApprovalButtons:
    """The Approve and Deny buttons under an approval message."""

    approve_id: str
    deny_id: str


def render_approval(request: ApprovalRequest) -> tuple[Outgoing, ApprovalButtons]:
    """A block that waits for a yes: its exact code (attached when long), its tools, who may
    decide and until when; the buttons' custom_ids carry the request id."""
    tools = ", ".join(f"`{_defang(t)}`" for t in request.tools) or "none"
    header = (
        f"⏸️ **Block {request.index}/{request.total}** ({_defang(request.language)}) needs "
        f"approval before it runs · tools: {tools}"
    )
    footer = (
        f"Approvers: {_defang(', '.join(request.requested_from))} · expires "
        f"<t:{int(request.expires_at)}:R> · or reply `approve` / `deny <reason>`"
    )
    text = f"{header}\n{_fenced(request.code, request.language)}\n{footer}"
    files: tuple[Attachment, ...] = ()
    if not _fits(text) or len(split_message(text)) > 1:
        name = f"block-{request.index}-for-approval.{_extension(request.language)}"
        files = (Attachment(filename=name, content=request.code.encode("utf-8")),)
        text = f"{header}\nThe code to approve is attached as `{name}`.\n{footer}"
    buttons = ApprovalButtons(
        approve_id=APPROVE_PREFIX + request.request_id, deny_id=DENY_PREFIX + request.request_id
    )
    return Outgoing(text=text, files=files), buttons


APPROVERS_LINE = "Approvers: "  # how render_approval's last line begins


def settled_content(content: str, reply: DecisionReply) -> str | None:
    """The approval message once a click settled its request: the code stays, the how-to-
    decide line becomes who decided (the buttons go with the edit); None to leave it."""
    match reply.status:
        case "granted":
            line = f"✅ approved by <@{reply.by}>"
        case "denied":
            line = f"⛔ denied by <@{reply.by}>"
        case "expired":
            line = "⌛ expired: nobody decided in time, so the block was not run"
        case "decided" | "not_approver" | "none":
            return None
        case _:
            assert_never(reply.status)
    head, _, last = content.rpartition("\n")
    kept = head if last.startswith(APPROVERS_LINE) else content
    return f"{kept[: DISCORD_LIMIT - len(line) - 1]}\n{line}"


def click_reply(reply: DecisionReply) -> str:
    """The one line only the clicker sees when a click changed nothing."""
    text = reply.detail
    if reply.by and text.endswith(f" by {reply.by}"):  # "already approved by 4242"
        text = text.removesuffix(reply.by) + f"<@{reply.by}>"
    return text


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
    """A one-sentence explanation of why the loop stopped without an answer. A budget's detail
    is that sentence (whose budget, how much of it was spent, and when it resets)."""
    said = " ".join(detail.split())
    if reason == "budget" and said:
        return said[:1].upper() + said[1:] + ("" if said.endswith(".") else ".")
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


NO_CONVERSATION_TEXT = "There is no conversation here yet: send a message to start one."
NEW_TEXT = "Started a fresh conversation. Earlier messages here are kept in the audit log."


def render_totals(totals: Totals, *, conversation_id: str) -> str:
    """The ``cost`` reply: tokens, cost, blocks and time of this conversation."""
    seconds = totals.duration_ms / 1000
    return (
        f"Conversation `{conversation_id[:8]}`: {totals.messages} message(s), "
        f"{totals.model_turns} model turn(s), {totals.input_tokens:,} tokens in / "
        f"{totals.output_tokens:,} out, ${totals.cost:.4f}, {totals.blocks} block(s) run, "
        f"{seconds:.1f} s."
    )


def render_replay(totals: Totals, *, conversation_id: str) -> str:
    """The ``replay`` reply: where the full audit trail of this conversation is."""
    return (
        f"{render_totals(totals, conversation_id=conversation_id)}\n"
        f"Every step (model calls, code, output, answer) is in the audit log: "
        f"`opsloop replay {conversation_id}` shows it and `opsloop audit verify` proves it intact."
    )


def command_message(reply: CommandReply) -> Outgoing:
    """A thread command's reply; ``replay`` attaches the conversation's audit trail."""
    if reply.refused:
        return Outgoing(text=reply.refused)
    if reply.decision is not None:  # approve and deny: what the decision did
        return Outgoing(text=reply.decision.detail)
    if reply.name is not CommandName.NEW and reply.conversation_id is None:
        return Outgoing(text=NO_CONVERSATION_TEXT)
    cid = reply.conversation_id or ""
    match reply.name:
        case CommandName.NEW:
            return Outgoing(text=NEW_TEXT)
        case CommandName.STOP:
            return Outgoing(text="Stopping." if reply.stopped else "Nothing is running here.")
        case CommandName.COST:
            assert reply.totals is not None
            return Outgoing(text=render_totals(reply.totals, conversation_id=cid))
        case CommandName.REPLAY:
            assert reply.totals is not None
            text = render_replay(reply.totals, conversation_id=cid)
            return Outgoing(text=text, files=(_replay_file(reply, conversation_id=cid),))
        case CommandName.APPROVE | CommandName.DENY:  # answered above, from the decision
            raise AssertionError("approve and deny always carry a decision")
        case _:
            assert_never(reply.name)


def _replay_file(reply: CommandReply, *, conversation_id: str) -> Attachment:
    from bot.audit.replay import render

    lines = render(list(reply.timeline), fmt="markdown")
    content = "\n".join(lines).encode("utf-8")
    return Attachment(filename=f"replay-{conversation_id[:8]}.md", content=content)
