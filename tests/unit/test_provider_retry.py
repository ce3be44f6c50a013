from __future__ import annotations

import email.utils
import json

import httpx
import httpx2
import ollama
import openai
import pytest

from bot.providers.ollama import translate_error as from_ollama
from bot.providers.openai_compat import translate_error as from_openai
from bot.providers.retry import (
    AttemptError,
    ConnectFailed,
    GaveUp,
    HttpStatus,
    Incomplete,
    Malformed,
    RetryPolicy,
    SinkFailed,
    Timeout,
    Unexpected,
    call_with_retries,
    parse_retry_after,
)

FAST = RetryPolicy(attempts=4, backoff_seconds=0, backoff_max_seconds=0, retry_after_max_seconds=30)


class Sleeps:
    """A fake sleep that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class Flaky:
    """An attempt that raises the given errors in order, then answers."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def no_translation(exc: Exception) -> AttemptError:
    return Unexpected(str(exc))


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(status: int) -> None:
    assert HttpStatus(status=status).retryable


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    assert not HttpStatus(status=status).retryable


def test_quota_exhausted_is_not_retried_but_a_plain_429_is() -> None:
    assert not HttpStatus(status=429, code="insufficient_quota").retryable
    assert HttpStatus(status=429, code="rate_limit_exceeded").retryable


def test_timeouts_broken_connections_and_cut_streams_are_retried_malformed_is_not() -> None:
    assert Timeout("t").retryable and ConnectFailed("c").retryable and Incomplete("i").retryable
    assert not Malformed("m").retryable and not Unexpected("u").retryable


def test_retry_after_is_read_in_seconds_milliseconds_and_as_a_date() -> None:
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    date = email.utils.formatdate(1_000_020.0, usegmt=True)
    assert parse_retry_after({"Retry-After": date}, now=1_000_000.0) == pytest.approx(20.0)
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None


async def test_attempts_are_counted_until_one_succeeds() -> None:
    attempt = Flaky(HttpStatus(status=503), ConnectFailed("refused"))
    result, attempts = await call_with_retries(
        attempt, policy=FAST, translate=no_translation, sleep=Sleeps()
    )
    assert (result, attempts, attempt.calls) == ("ok", 3, 3)


async def test_a_401_gives_up_after_one_attempt() -> None:
    attempt = Flaky(HttpStatus(status=401, message="bad key"))
    with pytest.raises(GaveUp) as caught:
        await call_with_retries(attempt, policy=FAST, translate=no_translation, sleep=Sleeps())
    assert caught.value.attempts == 1
    assert "HTTP 401: bad key" in str(caught.value)


async def test_it_gives_up_after_the_configured_number_of_attempts() -> None:
    attempt = Flaky(*[HttpStatus(status=500) for _ in range(10)])
    with pytest.raises(GaveUp) as caught:
        await call_with_retries(attempt, policy=FAST, translate=no_translation, sleep=Sleeps())
    assert caught.value.attempts == 4 and attempt.calls == 4


async def test_retry_after_sets_the_wait_when_longer_than_the_backoff() -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(attempts=3, backoff_seconds=0.5, backoff_max_seconds=1)
    attempt = Flaky(HttpStatus(status=429, retry_after=7.0), HttpStatus(status=503))
    await call_with_retries(attempt, policy=policy, translate=no_translation, sleep=sleeps)
    assert sleeps.waits[0] == 7.0
    assert 0.5 <= sleeps.waits[1] <= 1.0  # backoff with jitter, capped


async def test_a_retry_after_beyond_the_cap_gives_up_at_once() -> None:
    attempt = Flaky(HttpStatus(status=429, retry_after=3600.0))
    with pytest.raises(GaveUp) as caught:
        await call_with_retries(attempt, policy=FAST, translate=no_translation, sleep=Sleeps())
    assert caught.value.attempts == 1
    assert "Retry-After 3600 s, longer than the 30 s we wait" in str(caught.value)


async def test_sdk_errors_go_through_translate_and_unknown_ones_are_not_retried() -> None:
    attempt = Flaky(KeyError("surprise"))
    with pytest.raises(GaveUp) as caught:
        await call_with_retries(attempt, policy=FAST, translate=no_translation, sleep=Sleeps())
    assert caught.value.attempts == 1 and isinstance(caught.value.error, Unexpected)


async def test_an_error_of_the_callers_text_sink_is_raised_unchanged_and_not_retried() -> None:
    async def attempt() -> str:
        try:
            raise RuntimeError("surface is gone")
        except RuntimeError as exc:
            raise SinkFailed() from exc

    with pytest.raises(RuntimeError, match="surface is gone"):
        await call_with_retries(attempt, policy=FAST, translate=no_translation, sleep=Sleeps())


# -- what the SDKs raise, as each provider classifies it ----------------------------------

URL = "http://127.0.0.1:1/v1/chat/completions"


def openai_status(status: int, body: dict[str, object], headers: dict[str, str]) -> Exception:
    response = httpx2.Response(
        status, headers=headers, json=body, request=httpx2.Request("POST", URL)
    )
    client = openai.AsyncOpenAI(api_key="k", base_url="http://127.0.0.1:1/v1", max_retries=0)
    return client._make_status_error_from_response(response)


def test_openai_quota_exhausted_is_recognised_from_the_error_code() -> None:
    body = {"error": {"message": "You exceeded your quota", "code": "insufficient_quota"}}
    error = from_openai(openai_status(429, body, {}), timeout_seconds=1)
    assert isinstance(error, HttpStatus) and error.quota_exhausted and not error.retryable


def test_openai_rate_limits_carry_their_retry_after() -> None:
    body = {"error": {"message": "slow down", "code": "rate_limit_exceeded"}}
    error = from_openai(openai_status(429, body, {"retry-after": "2"}), timeout_seconds=1)
    assert isinstance(error, HttpStatus) and error.retryable and error.retry_after == 2.0
    assert error.reason == "HTTP 429: slow down"


def test_openai_timeouts_and_connection_errors_are_retried() -> None:
    request = httpx2.Request("POST", URL)
    assert isinstance(from_openai(openai.APITimeoutError(request), timeout_seconds=5), Timeout)
    assert isinstance(
        from_openai(openai.APIConnectionError(request=request), timeout_seconds=5), ConnectFailed
    )


def test_openai_malformed_json_is_malformed() -> None:
    try:
        json.loads("{nope")
    except json.JSONDecodeError as exc:
        assert isinstance(from_openai(exc, timeout_seconds=1), Malformed)


def test_ollama_errors_are_classified() -> None:
    assert isinstance(from_ollama(httpx.ReadTimeout("slow"), timeout_seconds=1), Timeout)
    assert isinstance(from_ollama(ConnectionError("refused"), timeout_seconds=1), ConnectFailed)
    assert isinstance(
        from_ollama(httpx.RemoteProtocolError("eof"), timeout_seconds=1), ConnectFailed
    )
    status = from_ollama(ollama.ResponseError("model not found", 404), timeout_seconds=1)
    assert isinstance(status, HttpStatus) and status.status == 404 and not status.retryable
    midstream = from_ollama(ollama.ResponseError("out of memory"), timeout_seconds=1)
    assert isinstance(midstream, Incomplete) and midstream.retryable
