"""Validation of a run request: language, code size, workspace name."""

from __future__ import annotations

import re

from sandbox.errors import BadRequest

LANGUAGES = ("python", "bash")
MAX_CODE_BYTES = 256 * 1024
# A workspace name becomes one directory name: no separators, no dot-dot, bounded length.
_WORKSPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_request(*, language: str, code: str, max_code_bytes: int = MAX_CODE_BYTES) -> bytes:
    """Validate ``language`` and ``code``; returns the code as UTF-8 bytes."""
    if language not in LANGUAGES:
        raise BadRequest(f"unknown language {language!r} (use one of: {', '.join(LANGUAGES)})")
    if not isinstance(code, str) or not code.strip():
        raise BadRequest("the code is empty")
    try:  # bytes a file held that were not UTF-8 (read with surrogateescape) go back as they were
        data = code.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:  # other lone surrogates (e.g. from JSON) are kept, encoded
        data = code.encode("utf-8", errors="surrogatepass")
    if len(data) > max_code_bytes:
        raise BadRequest(f"the code is {len(data)} bytes, over the limit of {max_code_bytes} bytes")
    return data


def check_workspace(name: str) -> str:
    """Return ``name`` if it is a safe workspace name, else raise ``BadRequest``."""
    if not isinstance(name, str) or not _WORKSPACE.fullmatch(name) or ".." in name:
        raise BadRequest(
            f"invalid workspace name {name!r}: use 1-128 letters, digits, '.', '_' or '-'"
        )
    return name
