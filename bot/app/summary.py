"""One conversation's summary row: its columns, and how each event folds into it (pure).

The read model (bot/app/readmodel.py) stores these rows; folding an event whose version the row
has already seen does nothing, which makes catching up idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from domain.chain import hash_of

COLUMNS = (
    "conversation_id",
    "id_hex",
    "platform",
    "workspace",
    "channel",
    "thread",
    "generation",
    "started_by",
    "authors",
    "status",
    "messages",
    "model_turns",
    "input_tokens",
    "output_tokens",
    "cost",
    "blocks",
    "started_at",
    "last_at",
    "successor_id",
    "version",
    "head_hash",
)


@dataclass(frozen=True)
class ConversationSummary:
    """One row of ``opsloop conversations``."""

    conversation_id: UUID
    platform: str
    workspace: str
    channel: str
    thread: str
    generation: int
    started_by: str
    authors: tuple[str, ...]
    status: str
    messages: int
    model_turns: int
    input_tokens: int
    output_tokens: int
    cost: float
    blocks: int
    started_at: datetime
    last_at: datetime
    successor_id: UUID | None
    version: int
    head_hash: str

    def as_json(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {
            **{k: getattr(self, k) for k in COLUMNS if k not in ("id_hex",)},
            "conversation_id": str(self.conversation_id),
            "authors": list(self.authors),
            "started_at": self.started_at.isoformat(),
            "last_at": self.last_at.isoformat(),
            "successor_id": str(self.successor_id) if self.successor_id else None,
        }


def summary_from_row(r: Any) -> ConversationSummary:
    """A summary from a database row (or a dict of its columns)."""
    return ConversationSummary(
        conversation_id=UUID(r["conversation_id"]),
        platform=r["platform"],
        workspace=r["workspace"],
        channel=r["channel"],
        thread=r["thread"],
        generation=int(r["generation"]),
        started_by=r["started_by"],
        authors=tuple(a for a in (r["authors"] or "").split("\x1f") if a),
        status=r["status"],
        messages=int(r["messages"]),
        model_turns=int(r["model_turns"]),
        input_tokens=int(r["input_tokens"]),
        output_tokens=int(r["output_tokens"]),
        cost=float(r["cost"]),
        blocks=int(r["blocks"]),
        started_at=datetime.fromtimestamp(r["started_at"], UTC),
        last_at=datetime.fromtimestamp(r["last_at"], UTC),
        successor_id=UUID(r["successor_id"]) if r["successor_id"] else None,
        version=int(r["version"]),
        head_hash=r["head_hash"],
    )


def fold(rows: dict[str, dict[str, Any]], e: Any) -> None:
    """Fold one event into its conversation's row (ignoring events already folded)."""
    key = str(e.originator_id)
    name = type(e).__name__
    row = rows.get(key)
    if row is None:
        if name != "Started":
            return  # a conversation whose start is missing is the audit's business
        row = rows[key] = {
            "conversation_id": key,
            "id_hex": e.originator_id.hex,
            "platform": e.platform,
            "workspace": e.workspace,
            "channel": e.channel,
            "thread": e.thread,
            "generation": e.generation,
            "started_by": e.started_by,
            "authors": f"\x1f{e.started_by}\x1f",
            "status": "idle",
            "messages": 0,
            "model_turns": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost": 0.0,
            "blocks": 0,
            "started_at": e.timestamp.timestamp(),
            "last_at": 0.0,
            "successor_id": None,
            "version": 0,
            "head_hash": "",
        }
    if e.originator_version <= row["version"]:
        return
    if name in ("MessageReceived", "MessageRefused"):
        if f"\x1f{e.author}\x1f" not in row["authors"]:
            row["authors"] += f"{e.author}\x1f"
        if name == "MessageReceived":
            row["messages"] += 1
            row["status"] = "open"
    elif name == "ModelReplied":
        row["model_turns"] += 1
        row["input_tokens"] += e.input_tokens
        row["output_tokens"] += e.output_tokens
        row["cost"] += e.cost
    elif name == "BlockStarted":
        row["blocks"] += 1
    elif name == "Answered":
        row["status"] = "answered"
    elif name == "Stopped":
        row["status"] = "stopped"
    elif name == "Renewed":
        row["successor_id"] = str(e.successor_id)
    row["version"] = e.originator_version
    row["last_at"] = e.timestamp.timestamp()
    row["head_hash"] = hash_of(e)
