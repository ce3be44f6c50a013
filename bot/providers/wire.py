"""Small helpers for reading HTTP error responses, shared by the providers."""

from __future__ import annotations

import json

from bot.providers.retry import HttpStatus, parse_retry_after


def error_message(body: str) -> tuple[str, str | None]:
    """The human message and error code in an error body (Ollama's or OpenAI's JSON, or text)."""
    try:
        data = json.loads(body)
    except ValueError:
        return " ".join(body.split())[:200], None
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message") or error.get("error") or json.dumps(error)
        return str(message)[:200], (str(code) if code is not None else None)
    return str(error)[:200], None


def status_error(*, status: int, body: str, headers: dict[str, str]) -> HttpStatus:
    """An ``HttpStatus`` error from a response's status, body and headers."""
    message, code = error_message(body)
    return HttpStatus(
        status=status, message=message, code=code, retry_after=parse_retry_after(headers)
    )
