"""Results out: what the loop produced becomes Slack messages within Slack's limits.

Pure functions, no I/O. Slack allows 3,000 characters in a section's text and 50 blocks in
a message; output longer than what reads well inline is shown as a head-and-tail preview
that *says* it is cut, and the whole stream is attached as a file (files upload v2), so
nothing is ever cut silently.

Text that others wrote (block code and output, the model's prose and answer, a user's text
echoed back, error details) is ``escape``d: Slack reads ``<!channel>``, ``<@U123>`` and
``<https://x|label>`` in message text, code blocks included, so ``&``, ``<`` and ``>`` become
entities and show as themselves. Limits are counted on the escaped text, and cuts never
split an entity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, assert_never

from bot.surface import ApprovalRequest, CommandName, CommandReply, DecisionReply, Totals, failed

if TYPE_CHECKING:
    from sandbox.result import RunResult

SECTION_LIMIT = 3000  # Slack: characters in one section block's text
BLOCK_LIMIT = 50  # Slack: blocks in one message
INLINE_LIMIT = 1500  # characters of code or of one stream shown inline before attaching it
STREAM_CHUNK = 2000  # characters per chat.appendStream call
_FENCE_OVERHEAD = 8  # "```\n" + "\n```"
_ENTITY = 5  # the longest entity escape() writes, "&amp;"

Block = dict[str, Any]


@dataclass(frozen=True)
class Upload:
    """A file to attach in the thread (files upload v2)."""

    filename: str
    title: str
    content: str


@dataclass(frozen=True)
class SlackMessage:
    """One ``chat.postMessage``: fallback text, blocks, and files to upload after it."""

    text: str
    blocks: tuple[Block, ...] = ()
    uploads: tuple[Upload, ...] = field(default=())


def escape(text: str) -> str:
    """``text`` shown literally by Slack: never a mention, a broadcast or a masked link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut_at(text: str, index: int) -> int:
    """``index``, moved back to the start of an entity it would split."""
    amp = text.rfind("&", max(0, index - _ENTITY + 1), index)
    return amp if amp >= 0 and ";" not in text[amp:index] else index


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters of escaped ``text``, never half an entity."""
    return text if len(text) <= limit else text[: _cut_at(text, limit)]


def _unescaped_len(text: str) -> int:
    return len(text) - 4 * text.count("&amp;") - 3 * (text.count("&lt;") + text.count("&gt;"))


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_LIMIT)}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, SECTION_LIMIT)}]}


def _fence(text: str) -> str:
    # A literal ``` inside would close Slack's code block early.
    return "```\n" + text.replace("```", "`\u200b``") + "\n```"


def split_text(text: str, *, limit: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` characters, at line ends where possible."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n", 0, limit)
        if cut <= limit // 2:
            cut = _cut_at(rest, limit)
        pieces.append(rest[:cut])
        rest = rest[cut:].lstrip("\n")
    if rest or not pieces:
        pieces.append(rest)
    return pieces


def preview(text: str, *, limit: int = INLINE_LIMIT) -> str:
    """Head and tail of escaped ``text`` with the number of characters left out, or ``text``."""
    if len(text) <= limit:
        return text
    head = text[: _cut_at(text, limit * 2 // 3)]
    tail = text[_cut_at(text, len(text) - limit // 3) :]
    hidden = _unescaped_len(text[len(head) : len(text) - len(tail)])
    return f"{head}\n… {hidden:,} characters not shown …\n{tail}"


def result_status(result: RunResult) -> str:
    """A few words on how a block ended: exit status, signal, limits hit."""
    if result.timed_out:
        words = ["timed out"]
    elif result.memory_exceeded:
        words = ["hit the memory limit"]
    elif result.signal:
        words = [f"killed by signal {result.signal}"]
    else:
        words = [f"exit {result.exit_code}"]
    if result.output_truncated:
        words.append("output truncated by the sandbox limit")
    words.append(f"{result.duration_ms / 1000:.1f} s")
    if getattr(result, "unsafe_local", False):
        words.append("⚠️ unsafe-local: no sandbox isolation")
    return " · ".join(words)


def block_message(
    *, index: int, total: int, language: str, code: str, result: RunResult
) -> SlackMessage:
    """One block shown as its code plus its result; long code or output becomes a file."""
    ok = not failed(result)
    mark = "✅" if ok else "❌"
    headline = f"{mark} *Block {index}/{total}* `{escape(language)}` · {result_status(result)}"
    blocks: list[Block] = [_section(headline)]
    uploads: list[Upload] = []
    ext = "py" if language == "python" else "sh" if language == "bash" else "txt"
    parts = (
        ("code", code, f"block-{index}.{ext}"),
        ("stdout", result.stdout, f"block-{index}-stdout.txt"),
        ("stderr", result.stderr, f"block-{index}-stderr.txt"),
    )
    for label, content, filename in parts:
        if not content.strip():
            continue
        whole = escape(content.rstrip("\n"))
        shown = preview(whole)
        note = ""
        if shown != whole:
            uploads.append(
                Upload(filename=filename, title=f"Block {index} {label}", content=content)
            )
            note = f" (cut here; the full {label}, {len(content):,} characters, is attached)"
        blocks.append(_context(f"*{label}*{note}"))
        blocks.append(_section(_fence(clip(shown, SECTION_LIMIT - _FENCE_OVERHEAD))))
    return SlackMessage(
        text=f"Block {index}/{total}: {result_status(result)}",
        blocks=tuple(blocks),
        uploads=tuple(uploads),
    )


APPROVE_ACTION = "opsloop_approve"  # Block Kit action_ids of the two buttons (public names)
DENY_ACTION = "opsloop_deny"


def approval_message(request: ApprovalRequest) -> SlackMessage:
    """A block that waits for a yes: its exact code (attached whole when long), the tools it
    would call, who may decide and until when, and Approve/Deny buttons whose value is the
    request id. ``approve``/``deny`` typed in the thread do the same."""
    ext = "py" if request.language == "python" else "sh" if request.language == "bash" else "txt"
    tools = ", ".join(f"`{escape(t)}`" for t in request.tools) or "none"
    approvers = ", ".join(escape(a) for a in request.requested_from)
    expires = int(request.expires_at)
    headline = (
        f"⏸️ *Block {request.index}/{request.total}* `{escape(request.language)}` needs approval "
        f"before it runs · tools: {tools}"
    )
    whole = escape(request.code.rstrip("\n"))
    shown = preview(whole)
    uploads: tuple[Upload, ...] = ()
    if shown != whole:
        name = f"block-{request.index}-for-approval.{ext}"
        uploads = (Upload(filename=name, title="Code to approve", content=request.code),)
    buttons = [
        _button("Approve", APPROVE_ACTION, request.request_id, style="primary"),
        _button("Deny", DENY_ACTION, request.request_id, style="danger"),
    ]
    note = _context(
        f"Approvers: {approvers} · expires <!date^{expires}^{{time}}|at {expires}> · "
        "or reply `approve` / `deny <reason>` in this thread"
        + (" · the whole code is attached" if uploads else "")
    )
    blocks: list[Block] = [
        _section(headline),
        _section(_fence(clip(shown, SECTION_LIMIT - _FENCE_OVERHEAD))),
        {**note, "block_id": f"{NOTE_BLOCK}{request.request_id}"},
        {"type": "actions", "block_id": f"approval-{request.request_id}", "elements": buttons},
    ]
    text = f"Block {request.index}/{request.total} needs approval before it runs"
    return SlackMessage(text=text, blocks=tuple(blocks), uploads=uploads)


NOTE_BLOCK = "approval-note-"  # block_id prefix of the line that says how to decide


def settled_line(reply: DecisionReply) -> str | None:
    """What replaces the buttons once a click settled the request; None when the message
    stays as it is (the click changed nothing that the message should show)."""
    match reply.status:
        case "granted":
            return f"✅ approved by {mention(reply.by)}"
        case "denied":
            return f"⛔ denied by {mention(reply.by)}"
        case "expired":
            return "⌛ expired: nobody decided in time, so the block was not run"
        case "decided" | "not_approver" | "none":
            return None
        case _:
            assert_never(reply.status)


def settled_message(blocks: Sequence[Block], *, line: str) -> SlackMessage:
    """The approval message with its buttons (and the how-to-decide line) replaced by
    ``line``; the code and the tools stay, so the thread keeps what was decided on."""
    kept = [
        b
        for b in blocks
        if b.get("type") != "actions" and not str(b.get("block_id", "")).startswith(NOTE_BLOCK)
    ]
    return SlackMessage(text=line, blocks=(*kept, _context(line)))


def click_reply(reply: DecisionReply) -> str:
    """The one line only the clicker sees when a click changed nothing."""
    text = escape(reply.detail)
    if reply.by and text.endswith(f" by {escape(reply.by)}"):  # "already approved by U012AB"
        text = text[: -len(escape(reply.by))] + mention(reply.by)
    return text


def mention(user: str) -> str:
    """``<@U012AB>``: Slack shows the person's name (a user id never holds ``<``/``>``)."""
    return f"<@{escape(user)}>"


def _button(label: str, action_id: str, value: str, *, style: str) -> Block:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": value,
        "style": style,
    }


def answer_messages(text: str) -> list[SlackMessage]:
    """The final answer as messages of at most 50 sections of at most 3,000 characters."""
    if not text.strip():
        text = "(the answer was empty)"  # Slack rejects an empty section
    sections = [_section(piece) for piece in split_text(escape(text), limit=SECTION_LIMIT)]
    messages = []
    for start in range(0, len(sections), BLOCK_LIMIT):
        chunk = sections[start : start + BLOCK_LIMIT]
        fallback = clip(chunk[0]["text"]["text"], 300)
        messages.append(SlackMessage(text=fallback, blocks=tuple(chunk)))
    return messages


def stream_chunks(text: str) -> list[str]:
    """``text`` cut into ``chat.appendStream`` pieces that join back to exactly ``text``.

    The pieces are raw text, escaped as each is sent: 2,000 characters escape to at most
    10,000, within the 12,000 a call takes.
    """
    return [text[i : i + STREAM_CHUNK] for i in range(0, len(text), STREAM_CHUNK)]


_STOP_SENTENCES = {
    "cancelled": "Stopped, as asked.",
    "turn_limit": "I stopped because I reached the limit of model turns for one message "
    "without an answer; ask again with more detail, or split the question.",
    "budget": "I stopped because this conversation reached its token or cost budget.",
    "model_unavailable": "I could not reach the language model, so I stopped; "
    "please try again in a little while.",
    "outcome_unknown": "I was restarted while a block was running, so its outcome is unknown "
    "and I did not run it again.",
}


def one_sentence(text: str, *, limit: int = 200) -> str:
    """The first line of ``text``, shortened: never a traceback."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def stopped_sentence(*, reason: str, detail: str) -> str:
    """One human sentence for a loop that stopped without an answer. A budget's detail is
    that sentence (whose budget, how much of it was spent, and when it resets)."""
    said = one_sentence(detail)
    if reason == "budget" and said:
        return escape(said[:1].upper() + said[1:] + ("" if said.endswith((".", "…")) else "."))
    known = _STOP_SENTENCES.get(reason)
    if known:
        return known
    said = escape(said)
    pretty = escape(reason.replace("_", " ")) or "an error"
    return f"I stopped ({pretty}): {said}" if said else f"I stopped ({pretty})."


def failure_sentence() -> str:
    """What the thread shows when the surface itself fails (the detail goes to the log)."""
    return "Something went wrong on my side while working on this; the details are in my log."


def cost_text(totals: Totals) -> str:
    """The ``cost`` command's reply."""
    seconds = totals.duration_ms / 1000
    return (
        f"So far: {totals.messages} message(s), {totals.model_turns} model turn(s), "
        f"{totals.input_tokens:,} input + {totals.output_tokens:,} output tokens, "
        f"${totals.cost:.4f}, {totals.blocks} block(s) run, {seconds:.1f} s."
    )


def replay_text(conversation_id: str) -> str:
    """The ``replay`` command's reply: the id and the auditor's command."""
    return (
        f"Conversation `{conversation_id}`. An auditor can replay it with "
        f"`opsloop replay {conversation_id}` and check the log with "
        f"`opsloop audit verify {conversation_id}`."
    )


def new_text(conversation_id: str) -> str:
    """The ``new`` command's reply."""
    return (
        f"Started a fresh conversation (`{conversation_id}`) in this thread; "
        "the earlier one stays in the log."
    )


def stop_text(stopped: bool) -> str:
    """The ``stop`` command's reply."""
    return "Stopping." if stopped else "Nothing is running in this thread."


NO_CONVERSATION_TEXT = "There is no conversation in this thread yet: mention me with a question."


def command_text(reply: CommandReply) -> str:
    """A thread command's reply, in this surface's words."""
    if reply.refused:
        return escape(reply.refused)
    if reply.decision is not None:  # approve and deny: what the decision did
        return escape(reply.decision.detail)
    if reply.name is not CommandName.NEW and reply.conversation_id is None:
        return NO_CONVERSATION_TEXT
    match reply.name:
        case CommandName.NEW:
            return new_text(reply.new_conversation_id or "")
        case CommandName.STOP:
            return stop_text(reply.stopped)
        case CommandName.COST:
            assert reply.totals is not None
            return cost_text(reply.totals)
        case CommandName.REPLAY:
            return replay_text(reply.conversation_id or "")
        case CommandName.APPROVE | CommandName.DENY:  # answered above, from the decision
            raise AssertionError("approve and deny always carry a decision")
        case _:
            assert_never(reply.name)


DECISION_NOT_RECORDED_TEXT = (
    "I could not record your decision because my event store is unavailable; "
    "please click again in a little while."
)
NOT_RECORDED_TEXT = (
    "I could not record this message because my event store is unavailable; "
    "Slack will deliver it again shortly."
)
RESUMED_TEXT = "I was restarted; picking up this conversation where it left off."
