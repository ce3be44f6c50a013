"""Who runs a conversation's loop, stops asked for, and results that came too late (pure).

A mixin of the ``Conversation`` aggregate, kept apart so each module holds one concept:

- ``LoopClaimed`` names the process that runs the loop from then on, with the token of its
  lease; a command carrying an older token is refused (``check_holder``), so a process that
  lost its lease while it was paused can never record another step.
- ``StopRequested`` is a stop asked for from anywhere (any replica, any surface); the process
  running the loop sees it and stops, and a new message after it withdraws it.
- ``BlockFinishedLate`` records the result of a block whose outcome was already recorded as
  unknown (its process had lost the loop). It changes no block: the turn has moved on, and a
  block is never run twice nor given two outcomes. It is recorded, never dropped.

The rules of a coherent history live here too: a model turn (reply, failure or answer) only
once every block of the previous turn has an outcome, and a stop skips every block that was
announced and not started (it waits for none: a started one must get its outcome first).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from domain import events as ev
from domain.errors import InvalidTransition, LoopTakenOver, UnknownBlock

OPEN = ("pending", "started")


class LoopControl:
    """Loop ownership, stop requests and late results: commands, queries and evolution."""

    if TYPE_CHECKING:
        _status: str
        _blocks: list[dict[str, Any]]
        id: Any

        def _trigger(self, event_class: type[ev.ConversationEvent], **payload: Any) -> None: ...
        def _check_not_renewed(self) -> None: ...
        def has_message(self, message_key: str) -> bool: ...

    # -- queries ---------------------------------------------------------------------------
    @property
    def loop_holder(self) -> tuple[str, int] | None:
        """(who, lease token) of the latest ``LoopClaimed``; None if no loop was claimed."""
        holder = self.__dict__.get("_holder")
        return None if holder is None else (str(holder["by"]), int(holder["token"]))

    @property
    def stop_requested_by(self) -> str | None:
        """Who asked the loop to stop, while that request stands (None otherwise)."""
        return self.__dict__.get("_stop_requested_by")

    @property
    def open_blocks(self) -> list[str]:
        """Blocks of the last turn without an outcome yet (pending or started)."""
        return [b["block_id"] for b in self._blocks if b["status"] in OPEN]

    def is_late(self, block_id: str) -> bool:
        """Whether a result for ``block_id`` now would be late: its outcome is recorded unknown."""
        return block_id in self.__dict__.get("_unknown_blocks", ())

    # -- commands --------------------------------------------------------------------------
    def claim_loop(
        self, *, by: str, token: int, lease_until: datetime, taken_over_from: str = ""
    ) -> None:
        """Record that ``by`` runs the loop from now on, under lease ``token``."""
        self._check_not_renewed()
        holder = self.loop_holder
        if holder is not None and token <= holder[1]:
            raise LoopTakenOver(
                f"lease token {token} is not newer than {holder[1]}, held by {holder[0]}"
            )
        self._trigger(
            ev.LoopClaimed,
            by=by,
            token=int(token),
            lease_until=lease_until.astimezone(UTC).isoformat(),
            taken_over_from=taken_over_from,
        )

    def check_holder(self, token: int) -> None:
        """Refuse a step of a process whose lease ``token`` is no longer the latest claim."""
        holder = self.loop_holder
        if holder is None or holder[1] != token:
            who = "nobody" if holder is None else f"{holder[0]} (token {holder[1]})"
            raise LoopTakenOver(
                f"this process no longer runs the loop (lease token {token}); it is held by {who}"
            )

    def request_stop(self, *, message_key: str, by: str) -> bool:
        """Ask the running loop to stop; False (nothing recorded) if a redelivery, or if no
        message is being worked on."""
        self._check_not_renewed()
        if self.has_message(message_key) or self._status != "open":
            return False
        self._trigger(ev.StopRequested, message_key=message_key, by=by)
        return True

    # -- guards ----------------------------------------------------------------------------
    def _check_turn_settled(self) -> None:
        """A model turn only once every block of the previous one has an outcome."""
        for b in self._blocks:
            if b["status"] in OPEN:
                raise InvalidTransition(
                    f"block {b['block_id']} of the last model turn is still {b['status']}: "
                    "every block gets its outcome before the next model turn"
                )

    def _skip_unstarted(self, reason: str) -> None:
        """Before a stop: every announced block not started is skipped; a started one must
        get its outcome first."""
        for b in self._blocks:
            if b["status"] == "started":
                raise UnknownBlock(
                    f"block {b['block_id']} is still running: its outcome comes before a stop"
                )
        for b in list(self._blocks):
            if b["status"] == "pending":
                self._trigger(
                    ev.BlockSkipped, block_id=b["block_id"], reason=f"the loop stopped: {reason}"
                )

    # -- evolution -------------------------------------------------------------------------
    def _evolve_loop(self, event: ev.LoopClaimed | ev.StopRequested | ev.BlockFinishedLate) -> None:
        match event:
            case ev.LoopClaimed():
                self._holder = {"by": event.by, "token": event.token}
            case ev.StopRequested():
                self._message_keys_now()[event.message_key] = event.originator_version
                self._stop_requested_by: str | None = event.by
            case ev.BlockFinishedLate():
                unknown = self._unknowns()
                if event.block_id in unknown:
                    unknown.remove(event.block_id)

    def _unknowns(self) -> list[str]:
        if "_unknown_blocks" not in self.__dict__:  # a snapshot from before late results
            self._unknown_blocks: list[str] = []
        return self._unknown_blocks

    def _message_keys_now(self) -> dict[str, int]:
        keys: dict[str, int] = self.__dict__["_message_keys"]
        return keys
