"""One-line renderings of the events that read the same in every replay format: who runs
the loop, files and feedback, approvals, the switch to the audit key (part of
bot/audit/replay.py)."""

from __future__ import annotations

from typing import Any

LOOP_EVENTS = ("LoopClaimed", "StopRequested")
LATE = " LATE (its outcome had been recorded as unknown; nothing was re-run)"


def loop_line(e: dict[str, Any]) -> str:
    """Who runs the loop from here on, or who asked it to stop."""
    if e["type"] == "StopRequested":
        return f"{e['by']} asked the loop to stop"
    taken = e.get("taken_over_from")
    how = f"took over the loop from {taken} (its lease had expired)" if taken else "runs the loop"
    return f"replica {e['by']} {how}, lease {e['token']} until {e['lease_until']}"


FILE_EVENTS = frozenset({"FileReceived", "FileRefused", "FileSent", "FeedbackGiven"})


def file_line(e: dict[str, Any], name: str) -> str:
    """A file or feedback event as one line; ``name`` as the format shows a file's name."""
    t = e["type"]
    if t == "FeedbackGiven":
        return f"{e['by']} rated the answer (sha256 {e['answer_sha256'][:12]}) {e['value']}"
    if t == "FileRefused":
        return f"file {name} from {e['by']} refused: {e['reason']}"
    size = f"{e['bytes']} bytes, sha256 {e['sha256'][:12]}"
    if t == "FileReceived":
        return f"file {name} ({size}) received from {e['by']}, in /workspace/inbox"
    return f"file {name} ({size}) sent with the answer"


def approval_line(e: dict[str, Any], requests: dict[str, dict[str, Any]]) -> str:
    """An approval event as one line; a decision names the block and code it was about."""
    t = e["type"]
    if t == "ApprovalRequested":
        requests[e["request_id"]] = e
        tools = ", ".join(e["tools"]) or "none"
        return (
            f"approval {e['request_id'][:8]} of block {e['block_id']} (code sha256 "
            f"{e['code_sha256'][:12]}, tools: {tools}) requested from "
            f"{', '.join(e['requested_from'])}, expires {e['expires_at']}"
        )
    asked = requests.get(e["request_id"], {})
    about = f"block {asked.get('block_id', '?')} (code sha256 {asked.get('code_sha256', '?')[:12]})"
    if t == "ApprovalGranted":
        return f"{about} approved by {e['by']}"
    if t == "ApprovalDenied":
        return f"{about} denied by {e['by']}" + (f": {e['reason']}" if e.get("reason") else "")
    return f"{about}: approval expired, nobody decided"


def keyed_line(e: dict[str, Any]) -> str:
    """The switch to the audit key (``AuditKeyed``)."""
    n = int(e["unsealed"])
    before = "event 1 was" if n == 1 else f"events 1 to {n} were"
    return (
        f"sealed with audit key {e['key_id']} from here on ({before} written before the "
        "store had one; this event's hash chain vouches for them)"
    )
