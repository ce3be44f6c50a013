"""Which failures of a model call are retried, and how (tenacity).

Each provider translates its SDK's exceptions into the ``AttemptError`` family below;
this module alone decides what is transient. Retried: timeouts, connection errors, a
stream cut short, HTTP 408, 409, 429 and 5xx. Not retried: every other status (400, 401,
403, 404 …), quota exhausted (OpenAI's 429 ``insufficient_quota``: waiting will not refill
it), a malformed response (a server speaking another protocol will not change its mind)
and anything unexpected. Waits grow exponentially with jitter; a ``Retry-After`` longer
than the backoff is honoured, and one longer than ``retry_after_max_seconds`` ends the
attempts at once, so the fallback provider can answer instead of the user waiting.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from bot.config import ModelsPolicy

T = TypeVar("T")
RETRIED_STATUSES = frozenset({408, 409, 429})
QUOTA_CODES = frozenset({"insufficient_quota"})


class AttemptError(Exception):
    """One attempt at a model call failed; ``reason`` is a short human phrase."""

    retryable = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Timeout(AttemptError):
    """No answer (or no next byte of it) within the per-request timeout."""

    retryable = True


class ConnectFailed(AttemptError):
    """The server could not be reached, or dropped the connection."""

    retryable = True


class Incomplete(AttemptError):
    """The stream ended before the model said it was done."""

    retryable = True


class Malformed(AttemptError):
    """The server answered something that is not the expected wire format."""


class Unexpected(AttemptError):
    """An error no rule covers; not retried, so a bug does not loop."""


class HttpStatus(AttemptError):
    """The server answered with an HTTP error status."""

    def __init__(
        self,
        *,
        status: int,
        message: str = "",
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        detail = f": {message[:200]}" if message else ""
        super().__init__(f"HTTP {status}{detail}")
        self.status = status
        self.code = code
        self.retry_after = retry_after

    @property
    def quota_exhausted(self) -> bool:
        """True for a 429 that means the account is out of credit, not just too fast."""
        return self.status == 429 and self.code in QUOTA_CODES

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        """408, 409, 429 (unless quota) and 5xx are worth another try."""
        if self.quota_exhausted:
            return False
        return self.status in RETRIED_STATUSES or self.status >= 500


class RetryAfterTooLong(AttemptError):
    """The server asked us to wait longer than we are willing to."""


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    lower = {k.lower(): v for k, v in headers.items()}
    if (ms := lower.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a provider makes, how long it waits between them, its timeout."""

    attempts: int = 4
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 20.0
    retry_after_max_seconds: float = 60.0
    timeout_seconds: float = 120.0

    @classmethod
    def from_policy(cls, models: ModelsPolicy) -> RetryPolicy:
        """The retry policy of opsloop.toml's ``[models]`` section."""
        return cls(
            attempts=models.attempts,
            backoff_seconds=models.backoff_seconds,
            backoff_max_seconds=models.backoff_max_seconds,
            retry_after_max_seconds=models.retry_after_max_seconds,
            timeout_seconds=models.timeout_seconds,
        )


class GaveUp(Exception):
    """Every attempt failed (or the last failure is not worth retrying)."""

    def __init__(self, error: AttemptError, attempts: int) -> None:
        super().__init__(error.reason)
        self.error = error
        self.attempts = attempts


class SinkFailed(Exception):
    """The caller's ``on_text`` raised: not a model failure, so it is never retried."""


def _capped(error: AttemptError, policy: RetryPolicy) -> AttemptError:
    if not isinstance(error, HttpStatus) or not error.retryable or error.retry_after is None:
        return error
    if error.retry_after <= policy.retry_after_max_seconds:
        return error
    return RetryAfterTooLong(
        f"{error.reason} with Retry-After {error.retry_after:g} s, longer than the "
        f"{policy.retry_after_max_seconds:g} s we wait"
    )


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    backoff = wait_exponential_jitter(
        multiplier=policy.backoff_seconds,
        max=policy.backoff_max_seconds,
        jitter=policy.backoff_seconds,
    )

    def wait(state: RetryCallState) -> float:
        delay = backoff(state) if policy.backoff_seconds > 0 else 0.0
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, HttpStatus) and error.retry_after is not None:
            # The server knows when it will have capacity again; earlier is wasted.
            delay = max(delay, error.retry_after)
        return delay

    return wait


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    translate: Callable[[Exception], AttemptError],
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> tuple[T, int]:
    """Run ``attempt`` until it succeeds or gives up; returns its result and the attempts made.

    ``translate`` maps the SDK's exceptions to ``AttemptError``; raises ``GaveUp``.
    """
    count = 0

    async def once() -> T:
        try:
            return await attempt()
        except SinkFailed:
            raise
        except AttemptError as exc:
            raise _capped(exc, policy) from exc
        except Exception as exc:  # noqa: BLE001 - every SDK error is translated, none escapes raw
            raise _capped(translate(exc), policy) from exc

    extra = {} if sleep is None else {"sleep": sleep}
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        retry=retry_if_exception(lambda e: isinstance(e, AttemptError) and e.retryable),
        wait=_wait(policy),
        reraise=True,
        **extra,  # type: ignore[arg-type]
    )
    try:
        async for state in retrying:
            with state:
                count = state.retry_state.attempt_number
                result = await once()
        return result, count
    except SinkFailed as exc:
        raise (exc.__cause__ or exc) from None
    except AttemptError as exc:
        raise GaveUp(exc, count) from exc
