"""The conversation application: commands and queries over the ``Conversation`` aggregate.

Each command is: load, one aggregate command, save -- inside an optimistic-concurrency retry
(when another writer appended first, the library raises ``IntegrityError``; we reload,
reapply and save again). The library's failures are translated into ``bot.errors`` at this
boundary; domain errors (domain/errors.py) pass through unchanged, because they mean the
caller asked for something the conversation's state does not allow. Methods are synchronous;
the loop calls them through ``asyncio.to_thread``. Every text is redacted before it is
stored (the loop's records are in bot/app/records.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import Mapper, Recording
from eventsourcing.utils import Environment, EnvType

from bot import metrics
from bot.app.files import FileRecords
from bot.app.keyed import KeySwitch
from bot.app.lease import LeaseTable
from bot.app.mapper import CheckedMapper, SealedSnapshots
from bot.app.mixed import refuse_mixed
from bot.app.ownership import LoopOwnership
from bot.app.personal import UserKeys
from bot.app.queries import ConversationQueries
from bot.app.readmodel import ReadModel
from bot.app.records import LoopRecords
from bot.app.schema import Schema, migrations
from bot.app.store import InFlight, PoolSizes, probe, retrying, store_env, translated
from bot.app.store import boundary as _boundary
from bot.app.usage import UsageLog
from bot.errors import NotFound
from bot.surface import Coordinates
from domain.conversation import Conversation
from domain.redaction import Redactor

if TYPE_CHECKING:
    from datetime import datetime


T = TypeVar("T")
SNAPSHOT_INTERVAL = 100
CLOSE_WAIT_SECONDS = 30.0  # a call under way when the app closes may finish first


class ConversationApp(
    KeySwitch, LoopOwnership, FileRecords, LoopRecords, ConversationQueries, Application[UUID]
):
    """Event-sourced conversations: record what happens, list, replay and verify.

    Every text is redacted before it is stored, by ``redactor`` (the process's one; without
    it, credential shapes only)."""

    name = "opsloop"
    snapshotting_intervals = {Conversation: SNAPSHOT_INTERVAL}  # noqa: RUF012

    def __init__(
        self,
        env: EnvType | None = None,
        *,
        database_url: str = "",
        redactor: Redactor | None = None,
        audit_key: bytes | None = None,
        allow_mixed: bool = False,
    ) -> None:
        self.database_url = database_url
        self.audit_key = audit_key
        self.redactor = redactor if redactor is not None else Redactor({})
        self._generations: dict[Coordinates, int] = {}
        self.calls = InFlight()  # closing waits for the calls under way
        self._fences: dict[UUID, int] = {}
        self.on_conflict: Callable[[], None] = metrics.conflict  # each retried conflict
        with translated(database_url):
            probe(dict(env or {}))
            super().__init__(env)
            datastore = self.factory.datastore  # type: ignore[attr-defined]
            postgres = type(self.factory).__module__.endswith("postgres")
            schema = getattr(datastore, "schema", "") if postgres else ""
            prefix = f"{schema}." if schema else ""
            self.readmodel = ReadModel(
                recorder=self.recorder, mapper=self.mapper, datastore=datastore, postgres=postgres
            )
            self.usage_log = UsageLog(
                recorder=self.recorder, mapper=self.mapper, datastore=datastore, postgres=postgres
            )
            self.leases = LeaseTable(datastore=datastore, postgres=postgres, prefix=prefix)
            self.user_keys = UserKeys(datastore=datastore, postgres=postgres)
            self.schema = Schema(datastore=datastore, postgres=postgres, prefix=prefix)
            self.upgrade = self.schema.ensure(migrations(self, postgres=postgres))
            if postgres:  # types a migration by another process created since we connected
                datastore.register_type_adapters()
            mapper = cast("CheckedMapper", self.mapper)
            mapper.user_key = self.user_keys.get
            if audit_key:  # personal text is erasable in a keyed store (docs/audit.md)
                mapper.user_key_or_new = self.user_keys.get_or_create
            if not allow_mixed:
                refuse_mixed(self.recorder, mapper)

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """Store the aggregates' new events, then count them (bot/metrics.py): what is
        counted is what this process recorded."""
        recordings = super().save(*objs, **kwargs)
        surfaces = {o.id: o.coordinates[0] for o in objs if isinstance(o, Conversation)}
        for recording in recordings:
            event = recording.domain_event
            metrics.observe(event, surface=surfaces.get(event.originator_id, "?"))
        return recordings

    def close(self) -> None:
        """Close the store once the calls under way in other threads are done."""
        self.calls.wait_idle(CLOSE_WAIT_SECONDS)
        super().close()

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Only the given env: opsloop's settings, not stray library variables."""
        values = {
            "IS_SNAPSHOTTING_ENABLED": "y",
            # A cache of recently used conversations, fast-forwarded from the store on every
            # get (so other replicas' events are seen) and deep-copied for each command (so a
            # command that fails or conflicts never corrupts it): a command then reads only
            # the events appended since, instead of replaying from the latest snapshot.
            "AGGREGATE_CACHE_MAXSIZE": "1000",
            "AGGREGATE_CACHE_FASTFORWARD": "y",
            **(dict(env) if env else {}),
        }
        return Environment(name, values)

    def _record(self, processing_event: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        """Record (personal text encrypted for whose it is), then cache what was saved, so
        the next command does not re-read it."""
        cast("CheckedMapper", self.mapper).owners = {
            aggregate_id: (aggregate.coordinates[0], aggregate.last_author)
            for aggregate_id, aggregate in processing_event.aggregates.items()
            if isinstance(aggregate, Conversation)
        }
        recordings = super()._record(processing_event)
        cache = self.repository.cache
        if cache is not None:  # (the library only does this without fast-forwarding)
            for aggregate_id, aggregate in processing_event.aggregates.items():
                cache.put(aggregate_id, aggregate)
        return recordings

    def construct_mapper(self) -> Mapper[UUID]:
        """The library's mapper with opsloop's error translation and upcast hashes."""
        mapper = CheckedMapper(
            transcoder=self.construct_transcoder(),
            compressor=self.factory.compressor(),
            cipher=self.factory.cipher(),
        )
        mapper.audit_key = self.audit_key
        return mapper

    def construct_snapshot_store(self) -> SealedSnapshots:
        """Snapshots are a cache: only sealed ones are used (see ``SealedSnapshots``)."""
        recorder = self.factory.aggregate_recorder(purpose="snapshots")
        return SealedSnapshots(mapper=self.mapper, recorder=recorder)

    # -- commands ------------------------------------------------------------------------
    @_boundary
    def receive_message(
        self, *, coordinates: Coordinates, message_key: str, author: str, text: str
    ) -> tuple[UUID, bool]:
        """Record a message (starting the conversation if needed); (id, False) if redelivered."""

        texts, where = self.redactor.clean(text=text)

        def attempt() -> tuple[UUID, bool]:
            conv = self._current_or_start(coordinates, by=author)
            recorded = conv.receive_message(
                message_key=message_key, author=author, text=texts["text"], redacted=where
            )
            if recorded:
                self.save(conv)
            return conv.id, recorded

        return self._retrying(attempt)

    @_boundary
    def refuse_message(
        self, *, coordinates: Coordinates, message_key: str, author: str, text: str, reason: str
    ) -> tuple[UUID, bool]:
        """Record a refused message; (id, False) and nothing recorded if redelivered."""

        texts, where = self.redactor.clean(text=text)

        def attempt() -> tuple[UUID, bool]:
            conv = self._current_or_start(coordinates, by=author)
            recorded = conv.refuse_message(
                message_key=message_key,
                author=author,
                text=texts["text"],
                reason=reason,
                redacted=where,
            )
            if recorded:
                self.save(conv)
            return conv.id, recorded

        return self._retrying(attempt)

    @_boundary
    def start_conversation(self, *, coordinates: Coordinates, by: str) -> UUID:
        """Start the current conversation of these coordinates, if it does not exist yet."""

        def attempt() -> UUID:
            conv = self._current_or_start(coordinates, by=by)
            if conv.pending_events:
                self.save(conv)
            return conv.id

        return self._retrying(attempt)

    def request_approval(
        self,
        conversation_id: UUID,
        *,
        block_id: str,
        request_id: str,
        tools: tuple[str, ...],
        requested_from: tuple[str, ...],
        expires_at: datetime,
    ) -> None:
        """Record that a pending block waits for an approver."""
        self._update(
            conversation_id,
            lambda c: c.request_approval(
                block_id=block_id,
                request_id=request_id,
                tools=tools,
                requested_from=requested_from,
                expires_at=expires_at,
            ),
        )

    def decide_approval(
        self,
        conversation_id: UUID,
        *,
        request_id: str,
        approve: bool,
        by: str,
        reason: str = "",
        now: float,
    ) -> None:
        """Record an approver's decision, made at ``now`` (``InvalidTransition`` when the
        request was settled or expired)."""
        if approve:
            self._update(
                conversation_id, lambda c: c.grant_approval(request_id=request_id, by=by, now=now)
            )
        else:
            reason = self.redactor.redact(reason).text
            self._update(
                conversation_id,
                lambda c: c.deny_approval(request_id=request_id, by=by, reason=reason, now=now),
            )

    def expire_approval(self, conversation_id: UUID, *, request_id: str, now: float) -> None:
        """Record that nobody decided a request in time."""
        self._update(conversation_id, lambda c: c.expire_approval(request_id=request_id, now=now))

    @_boundary
    def renew(self, *, coordinates: Coordinates, by: str) -> UUID:
        """The ``new`` command: close the current conversation and start its successor."""

        def attempt() -> UUID:
            current, generation = self._current(coordinates)
            try:
                old = self._load_for_change(current)
            except NotFound:
                conv = self._start(coordinates, generation=generation, by=by)
                self.save(conv)
                return conv.id
            successor = self._start(coordinates, generation=generation + 1, by=by)
            old.renew(successor_id=successor.id, by=by)
            self.save(old, successor)  # one transaction: a successor never exists unlinked
            return successor.id

        return self._retrying(attempt)

    @staticmethod
    def _start(coordinates: Coordinates, *, generation: int, by: str) -> Conversation:
        return Conversation.start(
            platform=coordinates.platform,
            workspace=coordinates.workspace,
            channel=coordinates.channel,
            thread=coordinates.thread,
            started_by=by,
            generation=generation,
        )

    def _current_or_start(self, coordinates: Coordinates, *, by: str) -> Conversation:
        # The generation last seen for these coordinates saves a lookup per message. It is
        # only a hint: the loaded conversation is fast-forwarded from the store, so if any
        # process renewed it since, its successor_id says so and we look again.
        generation = self._generations.get(coordinates)
        if generation is not None:
            with contextlib.suppress(NotFound):
                conv = self._load_for_change(self._id(coordinates, generation))
                if conv.successor_id is None:
                    return conv
        cid, generation = self._current(coordinates)
        if len(self._generations) > 10_000:
            self._generations.clear()
        self._generations[coordinates] = generation
        try:
            return self._load_for_change(cid)
        except NotFound:
            return self._start(coordinates, generation=generation, by=by)

    def _update(
        self,
        conversation_id: UUID,
        command: Callable[[Conversation], None],
        *,
        fenced: bool = True,
    ) -> None:
        """Load, check the fence (a loop command of a process that lost the loop is refused),
        command, save; reloaded and reapplied when another writer appended first."""

        def attempt() -> None:
            conv = self._load_for_change(conversation_id)
            if fenced:
                self._check_fence(conv)
            command(conv)
            self.save(conv)

        with translated(self.database_url):
            self._retrying(attempt)

    def _retrying(self, attempt: Callable[[], T]) -> T:
        return retrying(attempt, on_conflict=self.on_conflict)


def open_app(
    *,
    database_url: str,
    cipher_key: str | None = None,
    pool: PoolSizes | None = None,
    redactor: Redactor | None = None,
    audit_key: bytes | None = None,
    allow_mixed: bool = False,
    create: bool = False,
) -> ConversationApp:
    """The application on the store named by ``database_url`` (see bot/app/store.py),
    redacting what it stores with ``redactor`` and sealing it with ``audit_key``; its schema
    is brought up to date first (bot/app/schema.py), and it refuses to make a mixed store
    unless ``allow_mixed`` (``opsloop db encrypt``); ``create`` allows making a SQLite file's
    missing directory."""
    return ConversationApp(
        store_env(database_url, cipher_key=cipher_key, pool=pool, create=create),
        database_url=database_url,
        redactor=redactor,
        audit_key=audit_key,
        allow_mixed=allow_mixed,
    )
