"""Both SDK-backed providers against real HTTP servers on loopback, streaming and not.

Each test runs four ways: the Ollama wire format (NDJSON) and the OpenAI one (SSE), each
with streaming on and off. Waits are checked from the server's own arrival timestamps,
with loose bounds, never against a tight clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from bot.errors import ModelUnavailable
from bot.ports import ChatMessage
from bot.providers.base import ProviderModel
from bot.providers.ollama import OllamaModel
from bot.providers.openai_compat import OpenAICompatModel
from bot.providers.pricing import PriceTable
from bot.providers.retry import RetryPolicy
from tests.integration.llm_wire import (
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    Step,
    WireServer,
    free_port,
)

PROMPT = [ChatMessage("system", "You are terse."), ChatMessage("user", "Say hello.")]
FAST = RetryPolicy(
    attempts=3,
    backoff_seconds=0.01,
    backoff_max_seconds=0.05,
    retry_after_max_seconds=5.0,
    timeout_seconds=5.0,
)


@dataclass
class Wire:
    """One way of talking to a model: which wire format, streaming or not."""

    kind: str
    stream: bool

    def model(self, url: str, policy: RetryPolicy = FAST) -> ProviderModel:
        if self.kind == "ollama":
            return OllamaModel(
                model="llama3.1", host=url, retry=policy, prices=PriceTable(), stream=self.stream
            )
        return OpenAICompatModel(
            provider="openai",
            model="gpt-4o-mini",
            api_key="sk-test",
            base_url=f"{url}/v1",
            retry=policy,
            prices=PriceTable(),
            stream=self.stream,
        )


@pytest.fixture(
    params=[("ollama", True), ("ollama", False), ("openai", True), ("openai", False)],
    ids=["ollama-stream", "ollama-whole", "openai-stream", "openai-whole"],
)
def wire(request: pytest.FixtureRequest) -> Wire:
    return Wire(*request.param)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., object]]:
    servers: list[WireServer] = []

    async def start(*plan: Step) -> WireServer:
        server = WireServer(list(plan))
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


class Chunks:
    """A text sink that keeps what was streamed to it."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, chunk: str) -> None:
        self.seen.append(chunk)


async def test_it_answers_with_the_servers_token_counts_and_a_cost(wire: Wire, serve) -> None:
    server = await serve(Step(text="Hello there, operator."))
    model = wire.model(server.url)
    chunks = Chunks()
    reply = await model.reply(PROMPT, on_text=chunks)
    await model.aclose()
    assert reply.text == "Hello there, operator." == "".join(chunks.seen)
    assert len(chunks.seen) == (3 if wire.stream else 1)
    assert (reply.input_tokens, reply.output_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert not reply.tokens_estimated and reply.attempts == 1 and reply.failures == ()
    assert (reply.provider, reply.priced) == (wire.kind, True)
    sent = server.seen[0].body
    assert [m["content"] for m in sent["messages"]] == ["You are terse.", "Say hello."]
    if wire.kind == "openai":
        assert server.seen[0].authorization == "Bearer sk-test"
        assert reply.cost > 0
        if wire.stream:
            assert sent["stream_options"] == {"include_usage": True}


async def test_missing_usage_is_estimated_and_marked(wire: Wire, serve) -> None:
    server = await serve(Step(text="abcdefgh", usage=False))
    model = wire.model(server.url)
    reply = await model.reply(PROMPT)
    await model.aclose()
    assert reply.tokens_estimated
    assert reply.output_tokens == 3  # eight bytes, three per token (domain.tokens)
    assert reply.input_tokens > 0


async def test_a_503_is_retried_and_then_answered(wire: Wire, serve) -> None:
    server = await serve(Step(status=503), Step(text="recovered"))
    model = wire.model(server.url)
    reply = await model.reply(PROMPT)
    await model.aclose()
    assert (reply.text, reply.attempts, len(server.seen)) == ("recovered", 2, 2)


async def test_a_429_waits_for_its_retry_after(wire: Wire, serve) -> None:
    server = await serve(Step(status=429, headers={"Retry-After": "1"}), Step())
    model = wire.model(server.url)
    reply = await model.reply(PROMPT)
    await model.aclose()
    assert reply.attempts == 2
    gap = server.seen[1].at - server.seen[0].at
    assert gap >= 0.9, f"the retry came {gap:.2f} s after a Retry-After of 1 s"


async def test_a_retry_after_beyond_the_cap_gives_up_at_once(wire: Wire, serve) -> None:
    server = await serve(Step(status=429, headers={"Retry-After": "600"}))
    model = wire.model(server.url)
    with pytest.raises(ModelUnavailable, match="Retry-After 600 s, longer than the 5 s"):
        await model.reply(PROMPT)
    await model.aclose()
    assert len(server.seen) == 1


async def test_a_401_is_not_retried(wire: Wire, serve) -> None:
    server = await serve(Step(status=401), Step())
    model = wire.model(server.url)
    with pytest.raises(ModelUnavailable) as caught:
        await model.reply(PROMPT)
    await model.aclose()
    assert len(server.seen) == 1
    assert caught.value.failures[0].attempts == 1
    assert "failed after 1 attempt: HTTP 401" in str(caught.value)
    if wire.kind == "openai":
        assert "check OPENAI_API_KEY" in str(caught.value)


async def test_quota_exhausted_is_not_retried(wire: Wire, serve) -> None:
    body = '{"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}}'
    server = await serve(Step(status=429, body=body), Step())
    model = wire.model(server.url)
    with pytest.raises(ModelUnavailable, match="exceeded your current quota"):
        await model.reply(PROMPT)
    await model.aclose()
    assert len(server.seen) == 1


async def test_malformed_json_is_a_clear_failure(wire: Wire, serve) -> None:
    server = await serve(Step(malformed=True), Step())
    model = wire.model(server.url)
    with pytest.raises(ModelUnavailable, match="malformed response") as caught:
        await model.reply(PROMPT)
    await model.aclose()
    assert len(server.seen) == 1  # another protocol will not fix itself on a retry
    assert "\n" not in str(caught.value)


async def test_a_hanging_server_times_out_on_every_attempt(wire: Wire, serve) -> None:
    server = await serve(Step(hang=True), Step(hang=True))
    policy = RetryPolicy(attempts=2, backoff_seconds=0.01, timeout_seconds=0.3)
    model = wire.model(server.url, policy)
    with pytest.raises(ModelUnavailable, match="failed after 2 attempts: no answer within 0.3 s"):
        await model.reply(PROMPT)
    await model.aclose()
    assert len(server.seen) == 2


async def test_a_stream_cut_short_is_retried(serve) -> None:
    for kind in ("ollama", "openai"):
        server = await serve(Step(text="one two three four", cut=True), Step(text="whole"))
        model = Wire(kind, stream=True).model(server.url)
        chunks = Chunks()
        reply = await model.reply(PROMPT, on_text=chunks)
        await model.aclose()
        assert (reply.text, reply.attempts) == ("whole", 2)
        # What the first attempt streamed was shown; the reply holds only the answer.
        assert chunks.seen[:2] == ["one ", "two "]


async def test_a_refused_connection_is_retried_then_reported_with_a_hint(wire: Wire) -> None:
    model = wire.model(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ModelUnavailable) as caught:
        await model.reply(PROMPT)
    await model.aclose()
    assert caught.value.failures[0].attempts == FAST.attempts
    expected = "is Ollama running at" if wire.kind == "ollama" else "is the server at"
    assert "cannot connect" in str(caught.value) and expected in str(caught.value)


async def test_a_ping_reports_its_latency(wire: Wire, serve) -> None:
    server = await serve(Step())
    model = wire.model(server.url)
    latency = await model.ping()
    await model.aclose()
    assert latency >= 0
    assert server.seen[0].path in ("/api/tags", "/v1/models")


async def test_a_ping_of_a_model_ollama_lacks_says_how_to_pull_it(serve) -> None:
    server = await serve(Step())
    model = OllamaModel(model="qwen2.5", host=server.url, retry=FAST, prices=PriceTable())
    with pytest.raises(ModelUnavailable, match="run `ollama pull qwen2.5`"):
        await model.ping()
    await model.aclose()


async def test_a_failed_ping_is_one_sentence(wire: Wire, serve) -> None:
    server = await serve(Step(status=401))
    model = wire.model(server.url)
    with pytest.raises(
        ModelUnavailable, match=r"the heartbeat to http://127\.0\.0\.1:\d+\S* failed: HTTP 401"
    ):
        await model.ping()
    await model.aclose()
