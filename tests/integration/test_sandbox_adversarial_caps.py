# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
"""The adversarial suite, second round: caps that hold however a block hides its use, kernel
resources charged to the host, and limits reported honestly.

Real nsjail; under CI=true a missing jail fails the test rather than skipping it.
"""

from __future__ import annotations

import asyncio
import signal
import textwrap
import time
from pathlib import Path

import pytest

from sandbox.limits import Limits
from sandbox.process import run_process
from sandbox.tree import Budget, open_dir, usage
from tests.integration.sandbox_fixtures import (  # noqa: F401  (fixtures)
    data_dir,
    jail,
    workspace_fs,
    workspaces,
    workspaces_for,
)

pytestmark = pytest.mark.nsjail
LIMITS = Limits(wall_seconds=10)


async def py(jail, code: str, *, workspace: str | None = None, limits: Limits = LIMITS):  # type: ignore[no-untyped-def]
    return await jail.run(
        language="python", code=textwrap.dedent(code), limits=limits, workspace=workspace
    )


def files_in(path: Path) -> int:
    fd = open_dir(path)
    try:
        return usage(fd, budget=Budget()).files
    finally:
        import os

        os.close(fd)


# -- the workspace cap holds: bytes and files, however they are hidden --------------------


async def test_a_workspace_never_holds_more_files_than_its_cap(
    jail, data_dir: Path, workspace_fs: str
) -> None:
    jail.workspaces = workspaces_for(data_dir, fs=workspace_fs, files=500)
    code = """
        import os
        made = 0
        for i in range(5000):
            try:
                open(f"/workspace/f{i}", "w").close()
                made += 1
            except OSError as exc:
                print("refused", exc.strerror)
                break
        print("made", made)
    """
    result = await py(jail, code, workspace="conv-files")
    after = files_in(jail.workspaces.path("conv-files"))
    if workspace_fs == "image":  # a hard limit: the filesystem itself has no more inodes
        assert "refused No space left on device" in result.stdout, result.stdout
        assert 500 <= after <= 520
    else:  # polled: the block is stopped and the workspace emptied
        assert "over its" in result.stderr, result.stderr
        assert after == 0


async def test_data_deeper_than_path_max_counts_against_the_cap(
    jail, data_dir: Path, workspace_fs: str
) -> None:
    jail.workspaces = workspaces_for(data_dir, fs=workspace_fs, quota_mb=4)
    code = """
        import os
        os.chdir("/workspace")
        for _ in range(1500):
            os.mkdir("d")
            os.chdir("d")
        try:
            with open("hidden.bin", "wb") as f:
                for _ in range(24):
                    f.write(b"x" * (256 << 10))
                    f.flush()
            print("wrote all")
        except OSError as exc:
            print("refused", exc.strerror)
    """
    result = await py(jail, code, workspace="conv-deep-data")
    if workspace_fs == "image":
        assert "refused No space left on device" in result.stdout, result.stdout + result.stderr
    else:
        assert "over its" in result.stderr, result.stdout + result.stderr


async def test_deleted_but_still_open_files_count_against_the_cap(
    jail, data_dir: Path, workspace_fs: str
) -> None:
    jail.workspaces = workspaces_for(data_dir, fs=workspace_fs, quota_mb=4)
    code = """
        import os, time
        f = open("/workspace/ghost", "wb")
        os.unlink("/workspace/ghost")
        try:
            for _ in range(48):  # 12 MiB, three times the cap, in a file nobody can see
                f.write(b"x" * (256 << 10))
                f.flush()
                time.sleep(0.05)
            print("wrote all")
        except OSError as exc:
            print("refused", exc.strerror)
    """
    result = await py(jail, code, workspace="conv-ghost")
    assert "wrote all" not in result.stdout, result.stdout
    if workspace_fs == "image":
        assert "refused No space left on device" in result.stdout
    else:
        assert "over its" in result.stderr and result.signal is not None


async def test_a_slow_workspace_poll_never_stretches_the_wall_limit() -> None:
    async def slow_poll(_pid: int) -> bool:
        await asyncio.sleep(5)
        return False

    started = time.monotonic()
    outcome = await run_process(
        ["sleep", "30"], env={}, timeout=0.5, output_bytes=1024, watch=slow_poll
    )
    assert outcome.timed_out and time.monotonic() - started < 3


# -- kernel resources charged to the host ------------------------------------------------


async def test_inotify_and_fanotify_are_refused(jail) -> None:
    code = """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        for name, call in [("inotify_init1", lambda: libc.inotify_init1(0)),
                           ("inotify_init", lambda: libc.syscall(253)),
                           ("fanotify_init", lambda: libc.syscall(300, 0, 0))]:
            print(name, call(), ctypes.get_errno())
    """
    result = await py(jail, code)
    assert result.stdout.splitlines() == [
        "inotify_init1 -1 1",
        "inotify_init -1 1",
        "fanotify_init -1 1",
    ], result.stdout + result.stderr


async def test_only_unix_and_internet_sockets_can_be_created(jail) -> None:
    code = """
        import socket
        for family in (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6,
                       40, 16, 17, 38, 31, 5, 4):  # vsock, netlink, packet, alg, bt, appletalk, ipx
            try:
                socket.socket(family, socket.SOCK_DGRAM if family != 17 else socket.SOCK_RAW)
                print(family, "made")
            except OSError as exc:
                print(family, exc.errno)
        a, b = socket.socketpair()
        print("pair ok")
    """
    result = await py(jail, code)
    lines = result.stdout.splitlines()
    assert lines[:3] == ["1 made", "2 made", "10 made"], result.stdout + result.stderr
    assert lines[3:-1] == [f"{f} 97" for f in (40, 16, 17, 38, 31, 5, 4)]
    assert lines[-1] == "pair ok"


# -- honest limit reporting --------------------------------------------------------------


async def test_page_cache_then_a_timeout_is_reported_as_a_timeout_not_memory(
    jail, data_dir: Path
) -> None:
    jail.workspaces = workspaces_for(data_dir, quota_mb=512)
    code = """
        import time
        for i in range(20):  # 160 MiB of page cache against a 64 MiB memory cap
            with open(f"/workspace/cache{i}.bin", "wb") as f:
                f.write(b"x" * (8 << 20))
        print("written", flush=True)
        time.sleep(30)
    """
    result = await py(
        jail, code, workspace="conv-cache", limits=Limits(wall_seconds=4, memory_mb=64)
    )
    assert result.stdout == "written\n", result.stderr
    assert result.timed_out and not result.memory_exceeded


async def test_a_pooled_cgroup_carries_nothing_into_the_next_conversations_block(
    jail, data_dir: Path
) -> None:
    jail.workspaces = workspaces_for(data_dir, quota_mb=512)
    fill = """
        for i in range(20):
            with open(f"/workspace/cache{i}.bin", "wb") as f:
                f.write(b"x" * (8 << 20))
    """
    small = Limits(wall_seconds=4, memory_mb=64)
    await py(jail, fill, workspace="conv-first", limits=small)
    code = "import time\nkeep = bytearray(24 << 20)\nprint('ok', flush=True)\ntime.sleep(30)"
    result = await py(jail, code, workspace="conv-second", limits=small)
    assert result.stdout == "ok\n" and result.timed_out and not result.memory_exceeded


async def test_a_memory_bomb_is_still_reported_as_memory_exceeded(jail) -> None:
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(8 << 20))"
    result = await py(jail, code, limits=Limits(wall_seconds=5, memory_mb=64))
    assert result.signal == signal.SIGKILL and result.memory_exceeded and not result.timed_out


async def test_cpu_ms_is_the_blocks_own_cpu_time(jail) -> None:
    busy = await py(
        jail, "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass"
    )
    idle = await py(jail, "import time\ntime.sleep(0.5)")
    assert busy.cpu_ms is not None and idle.cpu_ms is not None
    assert 400 <= busy.cpu_ms <= busy.duration_ms + 50, busy
    assert idle.cpu_ms < 200 <= busy.cpu_ms - idle.cpu_ms
