"""The sandbox service's wire format: run requests in, results out as UTF-8 JSON.

Parsing never raises anything but ``BadRequest`` (deep nesting, invalid UTF-8, numbers a
limit cannot hold). Encoding never amplifies: strings are written as UTF-8, not
``\\uXXXX`` escapes, and a result's long output is encoded piece by piece, so no full-size
copy of the encoded body exists.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from sandbox.errors import BadRequest
from sandbox.limits import Limits, merge_requested
from sandbox.mounts import MAX_MOUNTS

FIELDS = ("language", "code", "limits", "workspace", "mounts", "warm")
PIECE_CHARS = 16 * 1024  # characters of a long string encoded at a time (at most 96 KiB)
WRITE_BYTES = 64 * 1024  # encoded pieces are gathered into writes of about this size


def json_bytes(value: object) -> bytes:
    """Compact JSON as UTF-8; a string with lone surrogates falls back to ``\\uXXXX``."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: escaped, so the body stays valid UTF-8
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def parse_run_request(raw: bytes, *, limits: Limits) -> dict[str, Any]:
    """The keyword arguments of ``Sandbox.run`` from a request body.

    ``limits`` are the service's own: the defaults of fields a request omits and the
    maxima of those it sets. ``mounts`` (names) is there only when the request names some;
    whether the runner has them is its own question (``BadRequest``). ``warm`` is there only
    when false: the block runs in a fresh jail even where the runner keeps warm kernels.
    """
    try:
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise BadRequest("the body is not JSON in UTF-8") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise BadRequest(f"unknown field {unknown[0][:40]!r}")
    language, code = body.get("language"), body.get("code")
    if not isinstance(language, str) or not isinstance(code, str):
        raise BadRequest("language and code must be strings")
    workspace = body.get("workspace")
    if workspace is not None and not isinstance(workspace, str):
        raise BadRequest("workspace must be a string")
    parsed: dict[str, Any] = {
        "language": language,
        "code": code,
        "limits": merge_requested(body.get("limits"), defaults=limits),
        "workspace": workspace,
    }
    mounts = body.get("mounts")
    if mounts is not None and (
        not isinstance(mounts, list)
        or len(mounts) > MAX_MOUNTS
        or not all(isinstance(name, str) for name in mounts)
    ):
        raise BadRequest(f"mounts must be a list of at most {MAX_MOUNTS} names")
    if mounts:  # only then: a runner from before mounts still serves every other request
        parsed["mounts"] = tuple(mounts)
    warm = body.get("warm", True)
    if not isinstance(warm, bool):
        raise BadRequest("warm must be true or false")
    if not warm:  # likewise: only a request that turns warm kernels off passes it on
        parsed["warm"] = False
    return parsed


def object_pieces(fields: Mapping[str, object]) -> Iterator[bytes]:
    """A JSON object as UTF-8 pieces; long strings come in pieces of ``PIECE_CHARS``."""
    yield b"{"
    for index, (key, value) in enumerate(fields.items()):
        yield (b"," if index else b"") + json_bytes(key) + b":"
        if isinstance(value, str) and len(value) > PIECE_CHARS:
            yield b'"'
            for start in range(0, len(value), PIECE_CHARS):
                yield json_bytes(value[start : start + PIECE_CHARS])[1:-1]
            yield b'"'
        else:
            yield json_bytes(value)
    yield b"}"


def gathered(pieces: Iterator[bytes], *, size: int = WRITE_BYTES) -> Iterator[bytes]:
    """``pieces`` joined into chunks of about ``size`` bytes (fewer, larger writes)."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        if len(buffer) >= size:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def result_chunks(fields: Mapping[str, object]) -> Iterator[bytes]:
    """A result as the writes that send it: one ``json_bytes`` when its strings are short
    (the same bytes, a tenth of the encoder calls), else gathered pieces."""
    if sum(len(value) for value in fields.values() if isinstance(value, str)) <= PIECE_CHARS:
        yield json_bytes(fields)
        return
    yield from gathered(object_pieces(fields))
