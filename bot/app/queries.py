"""The read side of the conversation application: timelines, listings, totals, lookups.

A mixin of ``bot.app.application.ConversationApp``, kept apart so each module holds one concept.
Listing and prefix lookup use the read model (bot/app/readmodel.py), never every aggregate.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from bot.app.readmodel import ConversationSummary
from bot.app.store import boundary as _boundary
from bot.audit.reader import AppSource
from bot.audit.replay import timeline_of
from bot.audit.verify import VerifyReport, verify_log
from bot.errors import AmbiguousId, NotFound
from bot.surface import Coordinates, Totals
from domain.budgets import DailySpend, Spend
from domain.conversation import Conversation
from domain.ids import conversation_id

if TYPE_CHECKING:
    from eventsourcing.application import Repository
    from eventsourcing.persistence import ApplicationRecorder, EventStore, Mapper

    from bot.app.mapper import CheckedMapper
    from bot.app.readmodel import ReadModel
    from bot.app.schema import Upgrade
    from bot.app.usage import UsageBy, UsageLog, UsageRow


class ConversationQueries:
    """Queries over conversations (mixed into ``ConversationApp``)."""

    if TYPE_CHECKING:
        database_url: str
        recorder: ApplicationRecorder
        mapper: Mapper[UUID]
        events: EventStore[UUID]
        readmodel: ReadModel
        upgrade: Upgrade
        usage_log: UsageLog

        @property
        def repository(self) -> Repository[UUID]: ...

    @property
    def schema_version(self) -> int:
        """The version of the store's schema (``opsloop doctor`` shows it)."""
        return int(self.upgrade.after)

    @_boundary
    def get(self, conversation_id: UUID) -> Conversation:
        """The conversation (satisfies ``domain.state.LoopState``)."""
        return self._load(conversation_id)

    @_boundary
    def current_id(self, coordinates: Coordinates) -> UUID:
        """The conversation these coordinates currently map to (following ``new``)."""
        return self._current(coordinates)[0]

    @_boundary
    def resolve(self, id_or_prefix: str) -> UUID:
        """A full id, or a unique prefix of one (as git does)."""
        text = id_or_prefix.strip().lower()
        digits = text.replace("-", "")
        if not digits or len(digits) > 32 or any(ch not in "0123456789abcdef" for ch in digits):
            raise NotFound(
                f"{id_or_prefix!r} is not a conversation id (expected hex digits of a UUID)"
            )
        if len(digits) == 32:
            cid = UUID(hex=digits)
            if not self.recorder.select_events(cid, limit=1):
                raise NotFound(f"no conversation {cid}")
            return cid
        self.readmodel.catch_up()
        found = self.readmodel.with_prefix(digits)
        if not found:
            raise NotFound(f"no conversation id starts with {id_or_prefix!r}")
        if len(found) > 1:
            raise AmbiguousId(
                f"{id_or_prefix!r} matches more than one conversation "
                f"({found[0]}, {found[1]}, ...); give more digits"
            )
        return found[0]

    @_boundary
    def timeline(self, conversation_id: UUID) -> list[dict[str, Any]]:
        """One plain dict per event, in order (what ``replay --format json`` prints)."""
        # Straight from the stored rows: no event objects are built for a replay.
        mapper = cast("CheckedMapper", self.mapper)
        stored = self.recorder.select_events(conversation_id)
        items = timeline_of(mapper.to_state(s) for s in stored)
        if not items:
            raise NotFound(f"no conversation {conversation_id}")
        return items

    @_boundary
    def list_conversations(
        self,
        *,
        platform: str | None = None,
        channel: str | None = None,
        user: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[ConversationSummary]:
        """Conversations by platform, channel, user and time range (from the read model)."""
        self.readmodel.catch_up()
        return self.readmodel.search(
            platform=platform, channel=channel, user=user, since=since, until=until
        )

    @_boundary
    def daily_spend(
        self, *, platform: str, day: date, user: str | None, channel: str | None
    ) -> DailySpend:
        """What ``user`` and ``channel`` of ``platform`` spent on models in the UTC ``day``, in
        every conversation and replica (from the usage ledger, caught up from the log first).
        A ``None`` is not read (its spend is zero): a budget nobody set costs no query."""
        self.usage_log.catch_up()
        log = self.usage_log
        return DailySpend(
            user=Spend() if user is None else log.spend(platform=platform, day=day, user=user),
            channel=(
                Spend()
                if channel is None
                else log.spend(platform=platform, day=day, channel=channel)
            ),
        )

    @_boundary
    def usage(self, *, by: UsageBy = "user", since: datetime | None = None) -> list[UsageRow]:
        """Model spend per person, channel, model or day since ``since`` (from the log)."""
        self.usage_log.catch_up()
        return self.usage_log.rows(by=by, since=since)

    @_boundary
    def totals(self, conversation_id: UUID) -> Totals:
        """Tokens, cost, blocks and duration of one conversation."""
        conv = self._load(conversation_id)
        counts = conv.counts
        return Totals(
            messages=counts["messages"],
            model_turns=counts["model_turns"],
            input_tokens=counts["input_tokens"],
            output_tokens=counts["output_tokens"],
            cost=conv.cost_used,
            blocks=counts["blocks"],
            duration_ms=int((conv.modified_on - conv.created_on).total_seconds() * 1000),
            truncated_turns=counts["truncated_turns"],
            discarded_chars=counts["discarded_chars"],
            estimated_turns=counts["estimated_turns"],
        )

    @_boundary
    def open_conversations(self) -> list[tuple[UUID, Coordinates]]:
        """Conversations with a message being worked on: candidates to resume after a crash."""
        self.readmodel.catch_up()
        return [
            (s.conversation_id, Coordinates(s.platform, s.workspace, s.channel, s.thread))
            for s in self.readmodel.open_ones()
        ]

    @_boundary
    def verify(
        self,
        conversation_id: UUID | None = None,
        *,
        checkpoints: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> VerifyReport:
        """Check seals, chains, versions and the listing (one conversation, or all), and
        compare with checkpoints taken before (see bot/audit/verify.py)."""
        mapper = cast("CheckedMapper", self.mapper)  # ConversationApp.construct_mapper makes one
        snapshots = getattr(self, "snapshots", None)
        source = AppSource(
            recorder=self.recorder,
            mapper=mapper,
            readmodel=self.readmodel,
            snapshot_recorder=snapshots.recorder if snapshots else None,
            usage_log=self.usage_log,
        )
        return verify_log(source, conversation_id, checkpoints=checkpoints)

    # -- plumbing ------------------------------------------------------------------------
    def _load(self, conversation_id: UUID) -> Conversation:
        try:
            return self.repository.get(conversation_id)
        except AggregateNotFoundError:
            raise NotFound(f"no conversation {conversation_id}") from None

    def _current(self, coordinates: Coordinates) -> tuple[UUID, int]:
        # A successor is saved in the same transaction as the Renewed that links to it, so
        # "generation g+1 exists" is the same fact as "generation g was renewed".
        generation = 0
        while True:
            nxt = self._id(coordinates, generation + 1)
            if not self.recorder.select_events(nxt, limit=1):
                return self._id(coordinates, generation), generation
            generation += 1

    @staticmethod
    def _id(coordinates: Coordinates, generation: int) -> UUID:
        return conversation_id(
            platform=coordinates.platform,
            workspace=coordinates.workspace,
            channel=coordinates.channel,
            thread=coordinates.thread,
            generation=generation,
        )
