# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
"""The service's peak memory for one result stays a small multiple of the output cap.

Before issue 9, 32 MiB of ``\\xff`` grew the service by 571 MiB: each invalid byte became
U+FFFD, and ``json.dumps`` wrote that as a six-byte ``\\ufffd`` escape, in full-size copies.
Here a real ``opsloop serve sandbox`` with real nsjail runs blocks that print their whole
cap, in the shapes an attacker would pick, and its peak RSS (VmHWM) is measured around one.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from sandbox.limits import MIB
from tests.integration.sandbox_fixtures import data_dir, jail, workspaces  # noqa: F401
from tests.integration.sandbox_service_helpers import TOKEN, service_process

CAP = 4 * MIB
BOUND = 8  # growth of the service's peak RSS, in multiples of the output cap
BLOCKS = {
    # invalid UTF-8: U+FFFD each (3 bytes of UTF-8, 6 as a \\u escape)
    "invalid UTF-8": f"import sys; sys.stdout.buffer.write(b'\\xff' * {CAP})",
    # control bytes: JSON must escape each as \\u0000
    "NUL bytes": f"import sys; sys.stdout.buffer.write(b'\\0' * {CAP})",
    # one astral character makes Python store the whole string at 4 bytes a character
    "an emoji, then invalid UTF-8": (
        f"import sys; sys.stdout.buffer.write('\\U0001F600'.encode() + b'\\xff' * {CAP - 4})"
    ),
}


async def run(url: str, code: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.post(f"{url}/v1/run", json={"language": "python", "code": code}) as response,
    ):
        assert response.status == 200, await response.text()
        result: dict[str, object] = json.loads(await response.read())
    return result


@pytest.mark.parametrize("code", BLOCKS.values(), ids=BLOCKS.keys())
async def test_a_result_of_a_whole_output_cap_grows_the_service_by_less_than_8x_the_cap(
    jail, data_dir: Path, code: str
) -> None:
    config = f"[sandbox]\noutput_bytes = {CAP}\nmemory_mb = 256\n"
    async with service_process(data_dir, config=config) as service:
        await run(service.url, "print(1)")  # warm up: imports, the first jail, buffers
        before = service.status("VmHWM")
        result = await run(service.url, code)
        growth = service.status("VmHWM") - before
    stdout = result["stdout"]
    assert isinstance(stdout, str) and len(stdout.encode("utf-8", "surrogatepass")) >= CAP
    assert result["output_truncated"] is False and result["exit_code"] == 0
    assert growth * 1024 < BOUND * CAP, f"peak RSS grew {growth / 1024:.1f} MiB for a 4 MiB cap"


async def test_both_streams_at_their_cap_grow_the_service_by_less_than_8x_their_sum(
    jail, data_dir: Path
) -> None:
    code = (
        f"import sys; sys.stdout.buffer.write(b'\\xff' * {CAP}); sys.stdout.flush(); "
        f"sys.stderr.buffer.write(b'\\xfe' * {CAP})"
    )
    config = f"[sandbox]\noutput_bytes = {CAP}\nmemory_mb = 256\n"
    async with service_process(data_dir, config=config) as service:
        await run(service.url, "print(1)")
        before = service.status("VmHWM")
        result = await run(service.url, code)
        growth = service.status("VmHWM") - before
    assert result["stdout"] == result["stderr"] == "\ufffd" * CAP
    assert growth * 1024 < BOUND * 2 * CAP, f"peak RSS grew {growth / 1024:.1f} MiB"
