"""Socket Mode: the same surface over a WebSocket from the Web API stand-in."""

from __future__ import annotations

import asyncio
import contextlib

from adapters.slack.app import SlackSurface
from adapters.slack.server import build_client, serve_socket_mode
from tests.fake_chat_service import FakeChatService
from tests.slack_standin import SlackStandIn, envelope, mention


async def test_socket_mode_acks_each_envelope_after_recording_it_and_answers_in_the_thread() -> (
    None
):
    slack = SlackStandIn()
    await slack.start()
    service = FakeChatService()
    service.gate = asyncio.Event()  # the model is slow: the ack must not wait for it
    service.receive_delay = 0.2  # and the store is slow: the ack must wait for it
    client = build_client(token="xoxb-test", base_url=slack.base_url)
    surface = SlackSurface(service=service, client=client, pacer_interval=0.05)
    serving = asyncio.create_task(serve_socket_mode(surface, app_token="xapp-test"))
    try:
        body = envelope(mention(channel="C1", ts="1.1", text="over the socket"), event_id="Ev1")
        await slack.push_event(body, envelope_id="env-1")
        await slack.wait_for(lambda: "env-1" in slack.socket_acks)
        assert [m.text for m in service.received] == ["over the socket"]
        assert service.recorded_at[0] <= slack.socket_acks["env-1"]  # recorded, then acked
        await slack.push_event(body, envelope_id="env-2", retry_attempt=1)  # a redelivery
        await slack.wait_for(lambda: "env-2" in slack.socket_acks)
        service.gate.set()
        await slack.wait_for(lambda: "white_check_mark" in slack.reactions("C1", "1.1"))
        await surface.idle()
        assert len(service.received) == 1 and len(service.runs) == 1
        assert "Answer to 'over the socket'" in slack.thread_text("C1", "1.1")
        opened = slack.of("apps.connections.open")
        assert len(opened) == 1
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        await client.session.close() if client.session else None
        await slack.stop()
