"""Closing the application waits for the calls under way in other threads: SQLite crashes
the whole process when a connection is closed under a running statement (seen when a lease
keeper's last look at the log was still in its worker thread as a service closed)."""

from __future__ import annotations

import threading

import pytest

from bot.app.application import open_app
from bot.errors import NotFound
from bot.surface import Coordinates


def test_closing_the_application_waits_for_a_call_under_way_in_another_thread() -> None:
    app = open_app(database_url="memory:")
    cid, _ = app.receive_message(
        coordinates=Coordinates("cli", "h", "me", "t"), message_key="m1", author="me", text="hi"
    )
    closing = threading.Thread(target=app.close)
    with app.calls.counted():  # a call under way, as a worker thread's would be
        closing.start()
        closing.join(timeout=0.3)
        assert closing.is_alive()  # still waiting for the call
        assert app.get(cid).status == "open"  # the store still answers meanwhile
    closing.join(timeout=10)
    assert not closing.is_alive()


def test_a_call_that_fails_is_no_longer_counted_as_under_way() -> None:
    app = open_app(database_url="memory:")
    with pytest.raises(NotFound):
        app.resolve("ffff")
    assert app.calls.wait_idle(timeout=1)
    app.close()
