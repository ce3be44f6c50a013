"""The run's tool socket on the host (``sandbox.relay.RelayServer``), spoken to over a real
unix socket as a block would: what the block is answered, and what the service logs, when the
relay behind it fails or its caller has gone away."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox.relay import BROKER_FAILED, CallerGone, RelayServer, serving


async def one_answer(directory: Path, relay: Callable[[dict[str, Any]], Awaitable[Any]]) -> bytes:
    """Send one frame through a real socket and return the line that came back."""
    async with serving(directory=directory, relay=relay, owner=(os.getuid(), os.getgid())) as srv:
        assert isinstance(srv, RelayServer)
        reader, writer = await asyncio.open_unix_connection(str(srv.path))
        writer.write(b'{"tool": "x", "arguments": {}}\n')
        await writer.drain()
        line = await reader.readline()
        writer.close()
        return line


async def gone(_frame: dict[str, Any]) -> dict[str, Any]:
    raise CallerGone("the caller went away")


async def broken(_frame: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("a bug in the broker")


async def test_a_frame_after_the_caller_went_away_is_answered_as_documented_and_logs_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="sandbox.relay"):
        line = await one_answer(tmp_path, gone)
    assert line == b'{"ok":false,"error":"the tool broker failed"}\n'  # docs/sandbox.md
    assert caplog.records == []  # the run is being stopped: expected, not a failure


async def test_a_broker_that_raises_is_answered_generically_and_logged_once_with_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="sandbox.relay"):
        line = await one_answer(tmp_path, broken)
    assert line == b'{"ok":false,"error":"the tool broker failed"}\n'
    assert BROKER_FAILED["error"] == "the tool broker failed"  # the same answer, but logged
    [record] = [r for r in caplog.records if r.exc_info]
    assert "a bug in the broker" in str(record.exc_info[1])  # type: ignore[index]
