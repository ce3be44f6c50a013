# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
"""Files into and out of a workspace a real jail wrote: a block plants links, FIFOs, huge and
many files, and the host side never follows, blocks, reads past a cap or writes outside."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from sandbox.client import SandboxClient
from sandbox.errors import FileRejected
from sandbox.files import SCAN_ENTRIES
from sandbox.limits import Limits
from tests.integration.sandbox_fixtures import data_dir, jail, workspaces  # noqa: F401
from tests.integration.sandbox_service_helpers import TOKEN, service_process

LIMITS = Limits(wall_seconds=10)
MB = 1 << 20


async def _block(jail, code: str, workspace: str = "w1") -> None:  # type: ignore[no-untyped-def]
    result = await jail.run(language="bash", code=code, limits=LIMITS, workspace=workspace)
    assert result.exit_code == 0, result.stderr


async def test_a_symlink_to_etc_shadow_offered_as_an_output_file_is_never_read(jail) -> None:
    await _block(
        jail,
        "mkdir -p /workspace/outbox && cd /workspace/outbox && ln -s /etc/shadow shadow"
        " && ln -s /etc/passwd passwd.txt && echo ok > report.txt",
    )
    found = await jail.read_outbox(workspace="w1", max_files=10, max_bytes=MB)
    assert [f.name for f in found.files] == ["report.txt"]
    assert found.files[0].data == b"ok\n"
    skipped = {s.name: s.reason for s in found.skipped}
    assert "symbolic link" in skipped["shadow"] and "symbolic link" in skipped["passwd.txt"]
    assert all(b"root:" not in f.data for f in found.files)


async def test_an_outbox_that_is_a_symlink_to_a_host_directory_yields_nothing(jail) -> None:
    await _block(jail, "ln -s /etc /workspace/outbox")
    found = await jail.read_outbox(workspace="w1", max_files=10, max_bytes=MB)
    assert found.files == ()
    assert found.skipped and "not a directory" in found.skipped[0].reason


async def test_a_fifo_a_directory_and_a_file_over_the_size_cap_are_skipped_without_blocking(
    jail,
) -> None:
    await _block(
        jail,
        "mkdir -p /workspace/outbox/sub && cd /workspace/outbox && mkfifo pipe"
        " && truncate -s 7M huge.bin && printf small > small.txt",
    )
    found = await jail.read_outbox(workspace="w1", max_files=10, max_bytes=MB)
    assert [f.name for f in found.files] == ["small.txt"]
    reasons = {s.name: s.reason for s in found.skipped}
    assert "not a regular file" in reasons["pipe"]
    assert "over the limit" in reasons["huge.bin"]
    assert "directory" in reasons["sub"]


async def test_many_files_are_capped_in_count_and_the_scan_is_bounded(jail) -> None:
    await _block(
        jail,
        f"mkdir -p /workspace/outbox && cd /workspace/outbox && "
        f"for i in $(seq 1 {SCAN_ENTRIES + 50}); do : > f$i; done",
    )
    found = await jail.read_outbox(workspace="w1", max_files=5, max_bytes=MB)
    assert len(found.files) == 5
    reasons = [s.reason for s in found.skipped]
    assert any(f"more than {SCAN_ENTRIES} entries" in r for r in reasons)
    assert any("more than 5 files" in r for r in reasons)


async def test_names_a_block_chose_are_made_safe_and_files_sent_before_are_not_sent_again(
    jail,
) -> None:
    await _block(
        jail,
        "mkdir -p /workspace/outbox && cd /workspace/outbox"
        " && printf a > $'evil\\e[31m.txt' && printf b > -rf && printf c > .hidden",
    )
    first = await jail.read_outbox(workspace="w1", max_files=10, max_bytes=MB)
    names = sorted(f.name for f in first.files)
    assert names == ["evil_[31m.txt", "hidden", "rf"]
    sent = [(f.name, f.sha256) for f in first.files]
    again = await jail.read_outbox(workspace="w1", sent=sent, max_files=10, max_bytes=MB)
    assert again.files == ()
    await _block(jail, "printf changed > /workspace/outbox/rf")
    changed = await jail.read_outbox(workspace="w1", sent=sent, max_files=10, max_bytes=MB)
    assert [(f.name, f.data) for f in changed.files] == [("rf", b"changed")]


async def test_a_file_put_in_the_inbox_keeps_inside_it_whatever_its_name(jail) -> None:
    stored = await jail.put_file(workspace="w1", name="../../etc/passwd", data=b"mine\n")
    second = await jail.put_file(workspace="w1", name="passwd", data=b"other\n")
    assert (stored.name, second.name) == ("passwd", "passwd (2)")
    assert stored.sha256 == hashlib.sha256(b"mine\n").hexdigest() and stored.bytes == 5
    result = await jail.run(
        language="bash",
        code="cat /workspace/inbox/passwd '/workspace/inbox/passwd (2)'",
        limits=LIMITS,
        workspace="w1",
    )
    assert result.stdout == "mine\nother\n", result.stderr


async def test_an_inbox_a_block_replaced_with_a_symlink_is_replaced_not_followed(
    jail, data_dir: Path
) -> None:
    target = data_dir / "host-dir"
    target.mkdir()
    os.chmod(target, 0o777)
    await _block(jail, f"ln -s {target} /workspace/inbox || true; ln -s /tmp /workspace/inbox2")
    stored = await jail.put_file(workspace="w1", name="x.log", data=b"data")
    assert stored.name == "x.log"
    assert list(target.iterdir()) == []
    result = await jail.run(
        language="bash", code="cat /workspace/inbox/x.log", limits=LIMITS, workspace="w1"
    )
    assert result.stdout == "data"


async def test_a_file_larger_than_the_workspace_quota_is_refused(jail) -> None:
    with pytest.raises(FileRejected, match="no room|full"):
        await jail.put_file(workspace="w1", name="big.bin", data=b"x" * (9 * MB))


async def test_files_go_in_and_out_through_a_real_sandbox_service(jail_reachable_dir: Path) -> None:
    async with service_process(jail_reachable_dir) as service:
        client = SandboxClient(url=service.url, token=TOKEN)
        try:
            stored = await client.put_file(workspace="s1", name="a/../app.log", data=b"line\n")
            run = await client.run(
                language="bash",
                code="mkdir -p /workspace/outbox && cp /workspace/inbox/app.log "
                "/workspace/outbox/copy.log && ln -s /etc/shadow /workspace/outbox/s",
                limits=LIMITS,
                workspace="s1",
            )
            found = await client.read_outbox(workspace="s1", max_files=5, max_bytes=MB)
        finally:
            await client.aclose()
    assert stored.name == "app.log" and run.exit_code == 0, run.stderr
    assert [(f.name, f.data) for f in found.files] == [("copy.log", b"line\n")]
    assert [s.name for s in found.skipped] == ["s"]


async def test_an_inbox_a_block_made_a_fifo_is_replaced_without_blocking(jail) -> None:
    await _block(jail, "mkfifo /workspace/inbox")
    stored = await jail.put_file(workspace="w1", name="a.txt", data=b"x")
    result = await jail.run(
        language="bash", code="cat /workspace/inbox/a.txt", limits=LIMITS, workspace="w1"
    )
    assert stored.name == "a.txt" and result.stdout == "x"


async def test_the_service_file_endpoints_refuse_callers_without_the_token_and_bad_requests(
    jail_reachable_dir: Path,
) -> None:
    import aiohttp

    async with service_process(jail_reachable_dir) as service:
        base = service.url
        good = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession() as session:

            async def status(path: str, *, headers: dict[str, str], **kw: object) -> int:
                async with session.post(f"{base}{path}", headers=headers, **kw) as response:
                    await response.read()
                    return response.status

            no_token = await status("/v1/files/inbox?workspace=s1&name=a", headers={}, data=b"x")
            wrong = await status(
                "/v1/files/outbox", headers={"Authorization": "Bearer nope"}, json={}
            )
            climbing = await status(
                "/v1/files/inbox?workspace=../etc&name=a", headers=good, data=b"x"
            )
            too_many = await status(
                "/v1/files/outbox",
                headers=good,
                json={"workspace": "s1", "max_files": 10_000, "max_bytes": 10},
            )
    assert (no_token, wrong) == (401, 401)
    assert (climbing, too_many) == (400, 400)
