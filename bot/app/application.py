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
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import IntegrityError, Mapper, Recording
from eventsourcing.utils import Environment, EnvType

from bot.app.queries import ConversationQueries
from bot.app.readmodel import ReadModel
from bot.app.records import LoopRecords
from bot.app.store import CheckedMapper, probe, store_env, translated
from bot.app.store import boundary as _boundary
from bot.app.usage import UsageLog
from bot.errors import NotFound, StoreError
from bot.surface import Coordinates
from domain.conversation import Conversation
from domain.redaction import Redactor

if TYPE_CHECKING:
    from datetime import datetime


T = TypeVar("T")
_RETRIES = 20
SNAPSHOT_INTERVAL = 100


class ConversationApp(LoopRecords, ConversationQueries, Application[UUID]):
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
    ) -> None:
        self.database_url = database_url
        self.redactor = redactor if redactor is not None else Redactor({})
        self._generations: dict[Coordinates, int] = {}
        with translated(database_url):
            probe(dict(env or {}))
            super().__init__(env)
            self.readmodel = ReadModel(
                recorder=self.recorder,
                mapper=self.mapper,
                datastore=self.factory.datastore,  # type: ignore[attr-defined]
                postgres=type(self.factory).__module__.endswith("postgres"),
            )
            self.readmodel.create_tables()
            self.usage_log = UsageLog(
                recorder=self.recorder,
                mapper=self.mapper,
                datastore=self.factory.datastore,  # type: ignore[attr-defined]
                postgres=type(self.factory).__module__.endswith("postgres"),
            )
            self.usage_log.create_tables()

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
        """Record, then cache what was saved, so the next command does not re-read it."""
        recordings = super()._record(processing_event)
        cache = self.repository.cache
        if cache is not None:  # (the library only does this without fast-forwarding)
            for aggregate_id, aggregate in processing_event.aggregates.items():
                cache.put(aggregate_id, aggregate)
        return recordings

    def construct_mapper(self) -> Mapper[UUID]:
        """The library's mapper with opsloop's error translation and upcast hashes."""
        return CheckedMapper(
            transcoder=self.construct_transcoder(),
            compressor=self.factory.compressor(),
            cipher=self.factory.cipher(),
        )

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
                old = self._load(current)
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
                conv = self._load(self._id(coordinates, generation))
                if conv.successor_id is None:
                    return conv
        cid, generation = self._current(coordinates)
        if len(self._generations) > 10_000:
            self._generations.clear()
        self._generations[coordinates] = generation
        try:
            return self._load(cid)
        except NotFound:
            return self._start(coordinates, generation=generation, by=by)

    def _update(self, conversation_id: UUID, command: Callable[[Conversation], None]) -> None:
        def attempt() -> None:
            conv = self._load(conversation_id)
            command(conv)
            self.save(conv)

        with translated(self.database_url):
            self._retrying(attempt)

    def _retrying(self, attempt: Callable[[], T]) -> T:
        for n in range(_RETRIES):
            try:
                return attempt()
            except IntegrityError:
                # Another writer appended first: reload and reapply (jitter avoids lockstep).
                time.sleep(random.uniform(0, 0.002 * (n + 1)))
        raise StoreError(f"gave up recording after {_RETRIES} concurrent-write conflicts")


def open_app(
    *,
    database_url: str,
    cipher_key: str | None = None,
    redactor: Redactor | None = None,
    create: bool = False,
) -> ConversationApp:
    """The application on the store named by ``database_url`` (see bot/app/store.py),
    redacting what it stores with ``redactor``; ``create`` allows making a SQLite file's
    missing directory."""
    return ConversationApp(
        store_env(database_url, cipher_key=cipher_key, create=create),
        database_url=database_url,
        redactor=redactor,
    )
