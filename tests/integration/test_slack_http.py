"""The Slack surface in HTTP mode, with signed Events API requests and the Web API stand-in."""

from __future__ import annotations

import asyncio
import json
import time

from adapters.slack.app import SlackSurface
from adapters.slack.server import build_client, serve_http
from bot.config import AccessPolicy
from bot.surface import Coordinates, Incoming
from tests.fake_chat_service import FakeChatService
from tests.slack_harness import SECRET, free_port, running_bot
from tests.slack_standin import TEAM, SlackStandIn, envelope, mention, message, sign


async def test_a_mention_gets_eyes_a_block_and_a_streamed_answer_in_its_thread() -> None:
    service = FakeChatService()
    async with running_bot(service) as bot:
        status, _ = await bot.events.send(
            envelope(mention(channel="C1", ts="100.1", text="add 2+2"), event_id="Ev1")
        )
        assert status == 200
        await bot.slack.wait_for(lambda: "white_check_mark" in bot.slack.reactions("C1", "100.1"))
        shown = bot.slack.thread_text("C1", "100.1")
        assert "print('add 2+2')" in shown  # the block's code
        assert "exit 0" in shown  # and its result
        assert "Answer to 'add 2+2': 4" in shown  # the streamed answer
        assert bot.slack.reactions("C1", "100.1") == ["eyes", "white_check_mark"]
        prose, answer = bot.slack.streams_in("C1", "100.1")  # streamed live, block hidden
        assert prose.strip() == "Let me run that." and answer == "Answer to 'add 2+2': 4"
        assert len(bot.slack.of("chat.stopStream")) == 2
        assert service.received[0].text == "add 2+2"  # the mention itself is stripped


async def test_the_message_is_recorded_before_slack_is_acknowledged_and_the_loop_runs_after() -> (
    None
):
    service = FakeChatService()
    service.gate = asyncio.Event()  # a model that does not answer until released
    service.receive_delay = 0.3  # a slow store: the ack has to wait for the recording
    async with running_bot(service) as bot:
        status, seconds = await bot.events.send(
            envelope(mention(channel="C1", ts="1.1", text="slow"), event_id="Ev1")
        )
        assert status == 200 and 0.3 <= seconds < 3.0
        assert [m.text for m in service.received] == ["slow"]  # recorded when the ack came
        assert bot.slack.of("chat.startStream") == []  # nothing said yet
        service.gate.set()
        await bot.slack.wait_for(lambda: "white_check_mark" in bot.slack.reactions("C1", "1.1"))


async def test_a_redelivery_while_the_loop_runs_starts_no_second_loop_and_no_second_reply() -> None:
    service = FakeChatService()
    service.gate = asyncio.Event()
    async with running_bot(service) as bot:
        body = envelope(mention(channel="C1", ts="1.1", text="once"), event_id="Ev1")
        assert (await bot.events.send(body))[0] == 200
        assert (await bot.events.send(body, retry_num=1))[0] == 200
        assert (await bot.events.send(body, retry_num=2))[0] == 200
        service.gate.set()
        await bot.slack.wait_for(lambda: "white_check_mark" in bot.slack.reactions("C1", "1.1"))
        await bot.surface.idle()
        assert len(service.received) == 1
        assert len(service.runs) == 1
        answers = [t for t in bot.slack.streams_in("C1", "1.1") if t.startswith("Answer")]
        assert answers == ["Answer to 'once': 4"]
        assert bot.slack.reactions("C1", "1.1") == ["eyes", "white_check_mark"]


async def test_a_reply_in_the_thread_continues_the_conversation_without_a_mention() -> None:
    service = FakeChatService()
    async with running_bot(service) as bot:
        await bot.events.send(
            envelope(mention(channel="C1", ts="1.1", text="first"), event_id="Ev1")
        )
        await bot.slack.wait_for(lambda: "white_check_mark" in bot.slack.reactions("C1", "1.1"))
        reply = message(channel="C1", ts="1.2", thread_ts="1.1", text="and then?")
        await bot.events.send(envelope(reply, event_id="Ev2"))
        await bot.slack.wait_for(lambda: "white_check_mark" in bot.slack.reactions("C1", "1.2"))
        first, second = service.received
        assert first.coordinates == second.coordinates  # the same conversation
        assert "Answer to 'and then?'" in bot.slack.thread_text("C1", "1.1")


async def test_channel_chatter_outside_our_threads_edits_deletes_and_bots_are_ignored() -> None:
    service = FakeChatService()
    async with running_bot(service) as bot:
        ignored = [
            message(channel="C1", ts="2.1", text="lunch?"),  # not addressed to the bot
            message(channel="C1", ts="2.2", thread_ts="2.1", text="yes"),  # a thread we are not in
            message(channel="C1", ts="2.3", text="x", subtype="message_changed"),
            message(channel="C1", ts="2.4", text="", subtype="message_deleted"),
            message(channel="C1", ts="2.5", text="beep", bot_id="B0OTHER"),
            message(channel="D1", ts="2.6", text="me", user="U0BOT", channel_type="im"),
        ]
        for number, event in enumerate(ignored):
            assert (await bot.events.send(envelope(event, event_id=f"EvI{number}")))[0] == 200
        await bot.surface.idle()
        assert service.received == []
        assert bot.slack.of("chat.postMessage") == []


async def test_a_direct_message_is_answered_in_the_dm() -> None:
    service = FakeChatService()
    async with running_bot(service) as bot:
        await bot.events.send(
            envelope(message(channel="D1", ts="3.1", text="hi", channel_type="im"), event_id="Ev3")
        )
        await bot.slack.wait_for(lambda: "white_check_mark" in bot.slack.reactions("D1", "3.1"))
        assert "Answer to 'hi'" in bot.slack.thread_text("D1", "3.1")


async def test_a_bad_signature_and_a_stale_timestamp_get_401_and_record_nothing() -> None:
    service = FakeChatService()
    async with running_bot(service) as bot:
        body = envelope(mention(channel="C1", ts="1.1", text="x"), event_id="Ev1")
        assert (await bot.events.send(body, secret="not-the-secret"))[0] == 401
        assert (await bot.events.send(body, timestamp=int(time.time()) - 600))[0] == 401
        await bot.surface.idle()
        assert service.received == []


async def test_users_outside_the_allowlist_get_a_short_refusal_that_is_recorded() -> None:
    service = FakeChatService(access={"slack": AccessPolicy(allow_users=["U0BOB"])})
    async with running_bot(service) as bot:
        await bot.events.send(
            envelope(mention(channel="C1", ts="4.1", text="rm -rf"), event_id="Ev4")
        )
        await bot.slack.wait_for(lambda: bool(bot.slack.posts_in("C1", "4.1")))
        assert "Sorry" in bot.slack.thread_text("C1", "4.1")
        assert [(i.author, reason) for i, reason in service.refused] == [
            ("U0ALICE", "user U0ALICE is not in [slack] allow_users")
        ]
        assert service.received == [] and service.runs == []


async def test_a_429_from_the_web_api_is_waited_out_with_retry_after() -> None:
    service = FakeChatService()
    async with running_bot(service) as bot:
        bot.slack.rate_limit("chat.postMessage", times=1, retry_after=1)
        await bot.events.send(envelope(mention(channel="C1", ts="5.1", text="x"), event_id="Ev5"))
        await bot.slack.wait_for(lambda: bool(bot.slack.of("chat.postMessage")))
        limited = bot.slack.of("chat.postMessage:429")[0]
        retried = bot.slack.of("chat.postMessage")[0]
        assert retried.at - limited.at >= 0.9  # waited for Retry-After before trying again
        assert retried.params["channel"] == "C1"


async def test_long_output_is_uploaded_as_a_file_and_the_preview_says_it_is_cut() -> None:
    service = FakeChatService(output_for=lambda text: "".join(f"line {n}\n" for n in range(5000)))
    async with running_bot(service) as bot:
        await bot.events.send(envelope(mention(channel="C1", ts="6.1", text="big"), event_id="Ev6"))
        await bot.slack.wait_for(lambda: bool(bot.slack.of("files.completeUploadExternal")))
        (upload,) = bot.slack.uploads.values()
        assert upload.decode().count("\n") == 5000  # the whole stdout, not a cut
        complete = bot.slack.of("files.completeUploadExternal")[0].params
        assert complete["channel_id"] == "C1" and complete["thread_ts"] == "6.1"
        assert "characters not shown" in bot.slack.thread_text("C1", "6.1")
        for call in bot.slack.of("chat.postMessage"):
            for block in call.params.get("blocks") or []:
                assert len(block.get("text", {}).get("text", "")) <= 3000


async def test_without_streaming_or_assistant_status_it_posts_and_edits_one_status_message() -> (
    None
):
    service = FakeChatService()
    slack = SlackStandIn(streaming=False, assistant_status=False)
    async with running_bot(service, slack=slack) as bot:
        await bot.events.send(envelope(mention(channel="C1", ts="7.1", text="x"), event_id="Ev7"))
        await bot.slack.wait_for(lambda: "white_check_mark" in bot.slack.reactions("C1", "7.1"))
        posts = [c.params["text"] for c in bot.slack.of("chat.postMessage")]
        assert posts[0].startswith("_⏳")  # the one status message
        assert any("Answer to 'x'" in text for text in posts)  # the answer, posted
        status_ts = bot.slack.of("chat.postMessage")[0].params["_ts"]
        assert all(c.params["ts"] == status_ts for c in bot.slack.of("chat.update"))
        assert bot.slack.of("chat.update")[-1].params["text"] == "_✅ done_"


async def test_thread_commands_stop_cost_replay_and_new() -> None:
    service = FakeChatService()
    service.gate = asyncio.Event()
    async with running_bot(service) as bot:
        await bot.events.send(
            envelope(mention(channel="C1", ts="8.1", text="long job"), event_id="Ev8")
        )
        await bot.slack.wait_for(lambda: bool(service.runs))
        await bot.events.send(
            envelope(mention(channel="C1", ts="8.2", thread_ts="8.1", text="stop"), event_id="Ev9")
        )
        await bot.slack.wait_for(lambda: "exclamation" in bot.slack.reactions("C1", "8.1"))
        for n, word in enumerate(["cost", "replay", "new"]):
            reply = message(channel="C1", ts=f"8.{3 + n}", thread_ts="8.1", text=word)
            await bot.events.send(envelope(reply, event_id=f"EvC{n}"))
        await bot.surface.idle()
        shown = bot.slack.thread_text("C1", "8.1")
        assert "Stopped, as asked." in shown
        assert "So far: 1 message(s)" in shown
        assert f"opsloop replay {service.runs[0]}" in shown
        assert "Started a fresh conversation" in shown
        assert [m.text for m in service.received] == ["long job"]  # commands are not messages


async def test_conversations_a_killed_process_left_open_are_resumed_in_their_threads() -> None:
    service = FakeChatService()
    left = Incoming(
        coordinates=Coordinates(platform="slack", workspace=TEAM, channel="C9", thread="9.1"),
        message_key="C9/9.1",
        author="U0ALICE",
        text="before the crash",
    )
    service.leave_interrupted(left)
    async with running_bot(service) as bot:
        assert await bot.surface.resume_interrupted() == 1
        await bot.slack.wait_for(lambda: "white_check_mark" in bot.slack.reactions("C9", "9.1"))
        shown = bot.slack.thread_text("C9", "9.1")
        assert "picking up this conversation" in shown
        assert "Answer to 'before the crash'" in shown


async def test_a_message_that_cannot_be_recorded_is_not_acknowledged_so_slack_redelivers_it() -> (
    None
):
    service = FakeChatService()
    service.store_down = True
    async with running_bot(service) as bot:
        body = envelope(mention(channel="C1", ts="10.1", text="disk?"), event_id="Ev10")
        assert (await bot.events.send(body))[0] == 500  # Slack will redeliver
        assert (await bot.events.send(body, retry_num=1))[0] == 500
        service.store_down = False
        assert (await bot.events.send(body, retry_num=2))[0] == 200
        await bot.slack.wait_for(lambda: "white_check_mark" in bot.slack.reactions("C1", "10.1"))
        notices = [c.params["text"] for c in bot.slack.posts_in("C1", "10.1") if "text" in c.params]
        assert sum("could not record" in text for text in notices) == 1  # said once, one sentence
        assert all("Traceback" not in text and "sqlite" not in text for text in notices)
        assert [m.text for m in service.received] == ["disk?"]


async def test_a_reply_sent_while_the_loop_runs_is_answered_once_and_marked_done() -> None:
    service = FakeChatService()
    service.gate = asyncio.Event()
    async with running_bot(service) as bot:
        await bot.events.send(envelope(mention(channel="C1", ts="11.1", text="one"), event_id="E1"))
        await bot.slack.wait_for(lambda: bool(service.runs))
        reply = message(channel="C1", ts="11.2", thread_ts="11.1", text="two")
        await bot.events.send(envelope(reply, event_id="E2"))
        await bot.slack.wait_for(lambda: "eyes" in bot.slack.reactions("C1", "11.2"))
        service.gate.set()
        await bot.slack.wait_for(lambda: "white_check_mark" in bot.slack.reactions("C1", "11.2"))
        await bot.surface.idle()
        answers = [t for t in bot.slack.streams_in("C1", "11.1") if t.startswith("Answer")]
        assert answers == ["Answer to 'one': 4", "Answer to 'two': 4"]  # each once
        assert len(service.runs) == 2  # the second run found nothing left to do


async def test_slacks_url_verification_challenge_is_answered_when_signed() -> None:
    async with running_bot(FakeChatService()) as bot:
        raw = json.dumps({"token": "t", "challenge": "3eZbrw1aBm2r", "type": "url_verification"})
        now = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": str(now),
            "X-Slack-Signature": sign(secret=SECRET, timestamp=now, body=raw),
        }
        assert bot.events.session is not None
        async with bot.events.session.post(bot.url, data=raw, headers=headers) as response:
            assert response.status == 200
            assert "3eZbrw1aBm2r" in await response.text()
        async with bot.events.session.post(bot.url, data=raw) as unsigned:
            assert unsigned.status == 401


async def test_serving_http_starts_the_approval_watcher_beside_the_listener_and_stops_it() -> None:
    service = FakeChatService()
    slack = SlackStandIn()
    await slack.start()
    client = build_client(token="xoxb-test", base_url=slack.base_url)
    surface = SlackSurface(service=service, client=client, signing_secret=SECRET)
    stop = asyncio.Event()
    serving = asyncio.create_task(
        serve_http(surface, host="127.0.0.1", port=free_port(), stop=stop)
    )
    try:
        async with asyncio.timeout(10):
            while not service.watching:
                await asyncio.sleep(0.01)
        watching = surface.watching
        stop.set()
        await serving
    finally:
        await client.session.close() if client.session else None
        await slack.stop()
    assert service.watching == ["slack"] and watching
    assert not surface.watching  # cancelled with the server
