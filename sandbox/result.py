"""The result of one sandboxed block, as a value that can be recorded in an event."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sandbox.errors import BadRequest

# The first line of a block's stderr when its conversation's kernel was lost, and what the
# model is told (bot.prompt.system): the same words.
RESTARTED = (
    "interpreter restarted: variables from earlier blocks are gone; files in /workspace remain"
)


@dataclass(frozen=True)
class RunResult:
    """What a block did: exit status, captured output and which limits it hit."""

    exit_code: int | None  # None when it was killed by a signal
    signal: int | None  # the signal that ended it (SIGKILL on timeout or out of memory)
    stdout: str
    stderr: str
    duration_ms: int
    timed_out: bool = False
    memory_exceeded: bool = False
    output_truncated: bool = False
    cpu_ms: int | None = None  # user+system CPU time, where the host can measure it
    unsafe_local: bool = False  # ran WITHOUT namespaces (OPSLOOP_SANDBOX=unsafe-local)
    # The interpreter it ran in: "new" (a fresh one: a bash block, a one-shot block, a
    # conversation's first kernel), "warm" (the conversation's running kernel) or
    # "restarted" (fresh, because the conversation's kernel was lost; see sandbox.kernels).
    kernel: str = "new"

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON and event payloads (every field is a scalar: no deep copy,
        which ``dataclasses.asdict`` would spend a tenth of a millisecond on)."""
        return {name: getattr(self, name) for name in _NAMES}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """The inverse of ``to_dict``; missing optional fields take their defaults."""
        try:
            return cls(**{k: v for k, v in data.items() if k in _KNOWN})
        except TypeError as exc:
            raise BadRequest(f"not a run result: {exc}") from None


_NAMES = tuple(f.name for f in fields(RunResult))  # read once, not on every block
_KNOWN = frozenset(_NAMES)
