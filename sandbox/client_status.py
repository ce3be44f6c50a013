"""What the sandbox service's answers mean to its client (``POST /v1/run`` and
``GET /v1/run/ws`` alike): retry (the block did not run), a bad request, a configuration
problem, or an outcome nobody can know."""

from __future__ import annotations

from tenacity import RetryCallState, wait_exponential

from sandbox.errors import BadRequest, OutcomeUnknown, SandboxUnavailable

MAX_RETRY_AFTER = 10.0


class Retryable(Exception):
    """The block did not run; trying again is safe."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_wait(state: RetryCallState) -> float:
    """Honour Retry-After when the service gave one, else back off exponentially."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, Retryable) and exc.retry_after is not None:
        return min(exc.retry_after, MAX_RETRY_AFTER)
    return float(wait_exponential(multiplier=0.1, max=2.0)(state))


def refusal(status: int, *, error: str, retry_after: str | None = None) -> Exception:
    """What an answer other than a result means: retry (the block did not run), a bad
    request, a configuration problem, or an outcome we cannot know."""
    if status == 400:
        return BadRequest(error)
    if status == 413:
        return BadRequest("the request is larger than the sandbox service accepts")
    if status in (429, 503):
        reason = error or ("busy" if status == 429 else "unavailable")
        return Retryable(reason, seconds_of(retry_after))
    if status == 401:
        return SandboxUnavailable(
            "the sandbox service rejected our token (check OPSLOOP_SANDBOX_TOKEN)"
        )
    return OutcomeUnknown(f"the sandbox service answered {status}: {error}")


def seconds_of(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds, when it is a number."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
