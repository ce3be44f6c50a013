"""The base of the tables kept from the notification log (the conversation listing, the usage
ledger): the store they live in, their schema's name prefix, and the shared position table."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import ApplicationRecorder, Mapper


class LogFollower:
    """A table kept from the notification log, in the event store's own database."""

    def __init__(
        self, *, recorder: ApplicationRecorder, mapper: Mapper, datastore: Any, postgres: bool
    ) -> None:
        self._recorder = recorder
        self._mapper = mapper
        self._datastore = datastore
        self._pg = postgres
        schema = getattr(datastore, "schema", "") if postgres else ""
        self._prefix = f"{schema}." if schema else ""
        self._position = f"{self._prefix}opsloop_readmodel_position"
