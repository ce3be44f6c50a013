"""The conversation application: commands and queries over the ``Conversation`` aggregate.

Each command is: load, one aggregate command, save -- inside an optimistic-concurrency retry
(when another writer appended first, the library raises ``IntegrityError``; we reload,
reapply and save again). Library and domain failures are translated into ``bot.errors`` at
this boundary. Methods are synchronous; the loop calls them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Mapper
from eventsourcing.utils import Environment, EnvType

from bot.audit import VerifyReport, verify_log
from bot.errors import AmbiguousId, NotFound, OpsloopError, StoreError
from bot.readmodel import ConversationSummary, ReadModel
from bot.replay import timeline_of
from bot.store import CheckedMapper, probe, store_env, translated
from bot.surface import Coordinates, Totals
from domain.conversation import Conversation
from domain.ids import conversation_id

if TYPE_CHECKING:
    from bot.ports import ModelReply
    from sandbox.result import RunResult

P = ParamSpec("P")
T = TypeVar("T")
_RETRIES = 20
SNAPSHOT_INTERVAL = 100


def _boundary(method: Callable[P, T]) -> Callable[P, T]:
    """Translate the library's persistence failures into opsloop's errors."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        app = args[0]
        with translated(getattr(app, "database_url", "")):
            return method(*args, **kwargs)

    return wrapper


class ConversationApp(Application[UUID]):
    """Event-sourced conversations: record what happens, list, replay and verify."""

    name = "opsloop"
    snapshotting_intervals = {Conversation: SNAPSHOT_INTERVAL}  # noqa: RUF012

    def __init__(self, env: EnvType | None = None, *, database_url: str = "") -> None:
        self.database_url = database_url
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

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Only the given env: opsloop's settings, not stray library variables."""
        values = {"IS_SNAPSHOTTING_ENABLED": "y", **(dict(env) if env else {})}
        return Environment(name, values)

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

        def attempt() -> tuple[UUID, bool]:
            conv = self._current_or_start(coordinates, by=author)
            recorded = conv.receive_message(message_key=message_key, author=author, text=text)
            if recorded:
                self.save(conv)
            return conv.id, recorded

        return self._retrying(attempt)

    @_boundary
    def refuse_message(
        self, *, coordinates: Coordinates, message_key: str, author: str, text: str, reason: str
    ) -> UUID:
        """Record a refused message (redeliveries are recorded once)."""

        def attempt() -> UUID:
            conv = self._current_or_start(coordinates, by=author)
            if conv.refuse_message(message_key=message_key, author=author, text=text, reason=reason):
                self.save(conv)
            return conv.id

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

    def record_model_reply(
        self, conversation_id: UUID, *, reply: ModelReply, prompt_fingerprint: str, prompt_notes: str = ""
    ) -> None:
        """Record the fallback chain's failures, then the reply."""

        def command(conv: Conversation) -> None:
            for f in reply.failures:
                conv.record_model_failure(
                    provider=f.provider, model=f.model, error=f.error, attempts=f.attempts
                )
            conv.record_model_reply(
                provider=reply.provider, model=reply.model, text=reply.text,
                input_tokens=reply.input_tokens, output_tokens=reply.output_tokens,
                tokens_estimated=reply.tokens_estimated, cost=reply.cost, priced=reply.priced,
                latency_ms=reply.latency_ms, attempts=reply.attempts,
                prompt_fingerprint=prompt_fingerprint, prompt_notes=prompt_notes,
            )

        self._update(conversation_id, command)

    def record_model_failure(
        self, conversation_id: UUID, *, provider: str, model: str, error: str, attempts: int
    ) -> None:
        """Record a provider that failed for good."""
        self._update(conversation_id, lambda c: c.record_model_failure(
            provider=provider, model=model, error=error, attempts=attempts))

    def start_block(self, conversation_id: UUID, *, block_id: str, limits: dict[str, Any]) -> None:
        """Record that a pending block is about to run."""
        self._update(conversation_id, lambda c: c.start_block(block_id=block_id, limits=limits))

    def finish_block(self, conversation_id: UUID, *, block_id: str, result: RunResult) -> None:
        """Record a block's result."""
        r = result
        self._update(conversation_id, lambda c: c.finish_block(
            block_id=block_id,
            exit_code=getattr(r, "exit_code", None),
            signal=getattr(r, "signal", None),
            stdout=getattr(r, "stdout", ""),
            stderr=getattr(r, "stderr", ""),
            duration_ms=getattr(r, "duration_ms", 0),
            cpu_ms=getattr(r, "cpu_ms", None),
            timed_out=getattr(r, "timed_out", False),
            memory_exceeded=getattr(r, "memory_exceeded", False),
            output_truncated=getattr(r, "output_truncated", False),
            unsafe_local=getattr(r, "unsafe_local", False),
        ))

    def skip_block(self, conversation_id: UUID, *, block_id: str, reason: str) -> None:
        """Record that a pending block will not run."""
        self._update(conversation_id, lambda c: c.skip_block(block_id=block_id, reason=reason))

    def refuse_block(self, conversation_id: UUID, *, block_id: str, reason: str) -> None:
        """Record that a block was refused."""
        self._update(conversation_id, lambda c: c.refuse_block(block_id=block_id, reason=reason))

    def mark_block_unknown(self, conversation_id: UUID, *, block_id: str, detail: str) -> None:
        """Record that a started block's outcome is unknown."""
        self._update(conversation_id, lambda c: c.mark_block_unknown(block_id=block_id, detail=detail))

    def answer(self, conversation_id: UUID, *, text: str) -> None:
        """Record the final answer."""
        self._update(conversation_id, lambda c: c.answer(text=text))

    def stop(self, conversation_id: UUID, *, reason: str, detail: str = "") -> None:
        """Record that the loop stopped without an answer."""
        self._update(conversation_id, lambda c: c.stop(reason=reason, detail=detail))

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

    # -- queries -------------------------------------------------------------------------
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
            raise NotFound(f"{id_or_prefix!r} is not a conversation id (expected hex digits of a UUID)")
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
        items = timeline_of(self.events.get(conversation_id))
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
        return self.readmodel.list(
            platform=platform, channel=channel, user=user, since=since, until=until
        )

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
    def verify(self, conversation_id: UUID | None = None) -> VerifyReport:
        """Recompute hash chains and versions (one conversation, or all)."""
        return verify_log(self, conversation_id)

    # -- plumbing ------------------------------------------------------------------------
    def _load(self, conversation_id: UUID) -> Conversation:
        try:
            return self.repository.get(conversation_id)  # type: ignore[no-any-return]
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
            platform=coordinates.platform, workspace=coordinates.workspace,
            channel=coordinates.channel, thread=coordinates.thread, generation=generation,
        )

    @staticmethod
    def _start(coordinates: Coordinates, *, generation: int, by: str) -> Conversation:
        return Conversation.start(
            platform=coordinates.platform, workspace=coordinates.workspace,
            channel=coordinates.channel, thread=coordinates.thread, started_by=by,
            generation=generation,
        )

    def _current_or_start(self, coordinates: Coordinates, *, by: str) -> Conversation:
        cid, generation = self._current(coordinates)
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


def open_app(*, database_url: str, cipher_key: str | None = None) -> ConversationApp:
    """The application on the store named by ``database_url`` (see bot/store.py)."""
    return ConversationApp(store_env(database_url, cipher_key=cipher_key), database_url=database_url)


def open_from_settings() -> ConversationApp:
    """The application configured by ``OPSLOOP_DATABASE_URL`` and ``OPSLOOP_CIPHER_KEY``."""
    from bot.settings import Settings

    try:
        settings = Settings()
    except Exception as exc:  # pydantic's validation error: one line for the user
        raise OpsloopError(f"invalid settings: {str(exc).splitlines()[0]}") from None
    return open_app(database_url=settings.resolved_database_url(), cipher_key=settings.cipher_key)
