"""Progress in a thread, against a hand-written recording stand-in for the Web API client."""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackApiError

from adapters.slack.pacer import ChannelPacer
from adapters.slack.progress import SlackProgress
from adapters.slack.thread import Capabilities, Thread
from sandbox.result import RunResult


class _Response:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


class RecordingClient:
    """Records calls by method name; refuses what the workspace does not support."""

    def __init__(self, *, assistant: bool, streaming: bool) -> None:
        self.assistant = assistant
        self.streaming = streaming
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._ts = 0

    def _ok(self, method: str, kwargs: dict[str, Any]) -> _Response:
        self.calls.append((method, kwargs))
        self._ts += 1
        return _Response({"ok": True, "ts": f"9.{self._ts}"})

    def _refuse(self, method: str) -> None:
        self.calls.append((method + ":refused", {}))
        raise SlackApiError("refused", _Response({"ok": False, "error": "not_allowed"}))

    async def assistant_threads_setStatus(self, **kwargs: Any) -> _Response:
        if not self.assistant:
            self._refuse("assistant.threads.setStatus")
        return self._ok("assistant.threads.setStatus", kwargs)

    async def chat_startStream(self, **kwargs: Any) -> _Response:
        if not self.streaming:
            self._refuse("chat.startStream")
        return self._ok("chat.startStream", kwargs)

    async def chat_appendStream(self, **kwargs: Any) -> _Response:
        return self._ok("chat.appendStream", kwargs)

    async def chat_stopStream(self, **kwargs: Any) -> _Response:
        return self._ok("chat.stopStream", kwargs)

    async def chat_postMessage(self, **kwargs: Any) -> _Response:
        return self._ok("chat.postMessage", kwargs)

    async def chat_update(self, **kwargs: Any) -> _Response:
        return self._ok("chat.update", kwargs)

    async def reactions_add(self, **kwargs: Any) -> _Response:
        return self._ok("reactions.add", kwargs)

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]


def progress_with(client: RecordingClient, caps: Capabilities | None = None) -> SlackProgress:
    return SlackProgress(
        client=client,  # type: ignore[arg-type]
        pacer=ChannelPacer(interval=0.0),
        capabilities=caps or Capabilities(),
        thread=Thread(team="T1", channel="C1", thread_ts="1.1", message_ts="1.1", user="U1"),
        status_interval=3600.0,  # no update can fall due during the test: only coalescing shows
    )


async def test_the_assistant_status_is_used_where_supported_and_cleared_at_the_end() -> None:
    client = RecordingClient(assistant=True, streaming=True)
    progress = progress_with(client)
    await progress.thinking()
    await progress.answered("42")
    statuses = [kw["status"] for m, kw in client.calls if m == "assistant.threads.setStatus"]
    assert statuses == ["is thinking…", ""]
    assert "chat.postMessage" not in client.methods()
    assert client.methods()[-4:] == [
        "assistant.threads.setStatus",
        "chat.startStream",
        "chat.stopStream",
        "reactions.add",
    ]


async def test_without_assistant_status_one_message_is_edited_and_rapid_updates_coalesce() -> None:
    client = RecordingClient(assistant=False, streaming=True)
    caps = Capabilities()
    progress = progress_with(client, caps)
    await progress.thinking()
    for index in (1, 2, 3):
        await progress.block_started(index=index, total=3, language="python", code="1")
    await progress.stopped(reason="budget", detail="")
    posts = [kw["text"] for m, kw in client.calls if m == "chat.postMessage"]
    updates = [kw["text"] for m, kw in client.calls if m == "chat.update"]
    assert posts[0] == "_⏳ is thinking…_"
    assert updates == ["_❗ stopped_"]  # the three block statuses never beat the throttle
    assert posts[1].startswith("I stopped because")
    assert client.calls[-1] == (
        "reactions.add",
        {"channel": "C1", "timestamp": "1.1", "name": "exclamation"},
    )
    assert caps.no_assistant_status == {"C1"}  # learnt once for the channel
    assert client.methods().count("assistant.threads.setStatus:refused") == 1


async def test_without_streaming_the_answer_is_posted_and_streaming_is_not_tried_again() -> None:
    client = RecordingClient(assistant=True, streaming=False)
    caps = Capabilities()
    await progress_with(client, caps).answered("the disk is full of logs")
    await progress_with(client, caps).answered("again")
    posts = [kw["text"] for m, kw in client.calls if m == "chat.postMessage"]
    assert posts == ["the disk is full of logs", "again"]
    assert client.methods().count("chat.startStream:refused") == 1


async def test_a_long_answer_streams_in_pieces_within_one_stream() -> None:
    client = RecordingClient(assistant=True, streaming=True)
    await progress_with(client).answered("word " * 2000)
    assert client.methods().count("chat.startStream") == 1
    assert client.methods().count("chat.appendStream") >= 4
    assert client.methods().count("chat.stopStream") == 1


async def test_a_finished_block_is_posted_as_code_and_result() -> None:
    client = RecordingClient(assistant=True, streaming=True)
    result = RunResult(exit_code=1, signal=None, stdout="", stderr="boom\n", duration_ms=5)
    await progress_with(client).block_finished(
        index=1, total=1, language="bash", code="false", result=result
    )
    ((method, kwargs),) = client.calls
    assert method == "chat.postMessage" and kwargs["thread_ts"] == "1.1"
    assert "exit 1" in kwargs["text"] and "boom" in str(kwargs["blocks"])


def streamed(client: RecordingClient) -> str:
    return "".join(
        kw.get("markdown_text", "")
        for m, kw in client.calls
        if m in ("chat.startStream", "chat.appendStream")
    )


async def say(progress: SlackProgress, reply: str) -> None:
    for start in range(0, len(reply), 3):  # tags split across chunks, as models do
        await progress.model_text(reply[start : start + 3])


async def test_prose_is_streamed_live_without_its_helper_blocks_and_ends_when_a_block_runs() -> (
    None
):
    client = RecordingClient(assistant=True, streaming=True)
    progress = progress_with(client)
    await progress.thinking()
    await say(progress, 'Checking disk.\n<helpers lang="bash">\ndf -h\n</helpers>\nBack soon.')
    await progress.block_started(index=1, total=1, language="bash", code="df -h")
    assert streamed(client) == "Checking disk.\nBack soon."
    assert client.methods().count("chat.stopStream") == 1


async def test_an_answer_already_streamed_is_finished_not_posted_again() -> None:
    client = RecordingClient(assistant=True, streaming=True)
    progress = progress_with(client)
    await progress.thinking()
    await say(progress, "The disk is full of old logs.")
    await progress.answered("The disk is full of old logs.")
    assert streamed(client) == "The disk is full of old logs."
    assert client.methods().count("chat.startStream") == 1
    assert "chat.postMessage" not in client.methods()


async def test_an_answer_that_differs_from_the_streamed_prose_is_posted_whole() -> None:
    client = RecordingClient(assistant=True, streaming=True)
    progress = progress_with(client)
    await say(progress, "Draft words")
    await progress.answered("Final words")
    posts = [kw["text"] for m, kw in client.calls if m == "chat.postMessage"]
    assert posts == ["Final words"]
    assert client.methods().count("chat.stopStream") == 1  # the draft stream was closed


async def test_where_streams_are_refused_the_prose_of_a_turn_is_posted_when_its_block_runs() -> (
    None
):
    client = RecordingClient(assistant=True, streaming=False)
    progress = progress_with(client)
    await progress.thinking()
    await say(progress, "Checking disk.\n<helpers>\nprint(1)\n</helpers>\n")
    await progress.block_started(index=1, total=1, language="python", code="print(1)")
    posts = [kw["text"] for m, kw in client.calls if m == "chat.postMessage"]
    assert posts == ["Checking disk."]
    assert client.methods().count("chat.startStream:refused") == 1


async def test_a_blocks_language_in_the_status_and_its_fallback_is_escaped() -> None:
    for assistant in (True, False):
        client = RecordingClient(assistant=assistant, streaming=True)
        await progress_with(client).block_started(index=1, total=1, language="<!here>", code="x")
        (status,) = [
            kw.get("status") or kw.get("text")
            for m, kw in client.calls
            if m in ("assistant.threads.setStatus", "chat.postMessage")
        ]
        assert "(&lt;!here&gt;)" in status and "<!here>" not in status


async def test_a_stop_detail_posted_in_the_thread_is_escaped() -> None:
    client = RecordingClient(assistant=True, streaming=True)
    await progress_with(client).stopped(reason="crashed", detail="<!channel> said no")
    posts = [kw["text"] for m, kw in client.calls if m == "chat.postMessage"]
    assert posts == ["I stopped (crashed): &lt;!channel&gt; said no"]


async def test_a_budget_stop_posts_whose_budget_it_was_and_when_it_resets() -> None:
    client = RecordingClient(assistant=True, streaming=True)
    sentence = (
        "This channel (C012PROD) has used $5.10 of its $5.00 daily budget today; "
        "it resets at 00:00 UTC, in 45 min."
    )
    await progress_with(client).stopped(reason="budget", detail=sentence)
    posts = [kw["text"] for m, kw in client.calls if m == "chat.postMessage"]
    assert posts == [sentence]
