# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
"""The adversarial suite, second round: what a hostile block tries against the host that runs
it, against other conversations, and against what an operator or auditor later sees.

Each test fails on the wave-1 sandbox and passes now. Real nsjail; under CI=true a missing
jail fails the test rather than skipping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from sandbox.jail import NsjailSandbox
from sandbox.limits import Limits
from sandbox.rundir import runs_root
from tests.integration.sandbox_fixtures import (  # noqa: F401  (fixtures)
    as_local_user,
    data_dir,
    jail,
    private_uids,
    workspace_fs,
    workspaces,
    workspaces_for,
)

pytestmark = pytest.mark.nsjail
LIMITS = Limits(wall_seconds=10)
DEEP_CHAIN = """
    import os
    os.chdir("/workspace")
    for _ in range(2000):  # 4,000 bytes of path and more: past PATH_MAX and any recursion
        os.mkdir("a")
        os.chdir("a")
    open("bottom.txt", "w").write("hidden below PATH_MAX")
    print("built")
"""


async def py(jail, code: str, *, workspace: str | None = None, limits: Limits = LIMITS):  # type: ignore[no-untyped-def]
    return await jail.run(
        language="python", code=textwrap.dedent(code), limits=limits, workspace=workspace
    )


async def sh(jail, code: str, *, workspace: str | None = None, limits: Limits = LIMITS):  # type: ignore[no-untyped-def]
    return await jail.run(language="bash", code=code, limits=limits, workspace=workspace)


def run_dirs_of(uid: int) -> list[str]:
    """Scratch directories of runs as ``uid`` (other processes on this host run blocks too)."""
    return [e.name for e in os.scandir(runs_root()) if e.stat(follow_symlinks=False).st_uid == uid]


# -- no block can crash or wedge opsloop --------------------------------------------------


async def test_a_tree_deeper_than_path_max_in_a_scratch_workspace_leaves_nothing_behind(
    jail, data_dir: Path
) -> None:
    jail.workspaces = workspaces_for(data_dir, uids=private_uids())
    result = await py(jail, DEEP_CHAIN)
    assert result.stdout == "built\n", result.stderr
    after = await py(jail, "print('next')")
    assert after.stdout == "next\n"
    assert run_dirs_of(jail.workspaces.scratch_owner()[0]) == []


async def test_a_deep_tree_in_a_workspace_does_not_stop_later_runs_or_pruning(
    jail, data_dir: Path, workspace_fs: str
) -> None:
    jail.workspaces = workspaces_for(data_dir, fs=workspace_fs)
    assert (await py(jail, DEEP_CHAIN, workspace="conv-deep")).stdout == "built\n"
    assert (await sh(jail, "echo other > /workspace/f", workspace="conv-other")).exit_code == 0
    again = await sh(jail, "ls /workspace", workspace="conv-deep")
    assert again.stdout == "a\n", again.stderr
    removed = jail.workspaces.prune(now=time.time() + 10 * 3600)
    assert sorted(removed) == ["conv-deep", "conv-other"]
    assert not (jail.workspaces.root / "conv-deep").exists()


async def test_a_deep_tree_over_the_cap_is_emptied_without_crashing_the_run(
    jail, data_dir: Path
) -> None:
    jail.workspaces = workspaces_for(data_dir, fs="directory", quota_mb=1)
    code = DEEP_CHAIN.replace(
        'open("bottom.txt", "w").write("hidden below PATH_MAX")',
        'open("bottom.bin", "wb").write(b"x" * (3 << 20))',
    )
    result = await py(jail, code, workspace="conv-over")
    assert "over its" in result.stderr and "cap" in result.stderr
    assert (await sh(jail, "ls -A /workspace | wc -l", workspace="conv-over")).stdout == "0\n"


async def test_stale_scratch_dirs_holding_deep_trees_do_not_stop_the_next_start(
    workspaces,
) -> None:
    stale = runs_root() / "run-stale-deep"
    stale.mkdir()
    current = os.open(stale, os.O_RDONLY)
    for _ in range(2500):
        os.mkdir("a", dir_fd=current)
        child = os.open("a", os.O_RDONLY, dir_fd=current)
        os.close(current)
        current = child
    os.close(current)
    os.utime(stale, (0, 0))
    sandbox = NsjailSandbox.create(workspaces=workspaces)  # cleans stale run dirs on start
    await sandbox.aclose()
    assert not stale.exists()


async def test_a_deep_tree_in_an_unsafe_local_scratch_workspace_is_removed(
    data_dir: Path,
) -> None:
    from sandbox.unsafe import UnsafeLocalSandbox

    unsafe = UnsafeLocalSandbox(workspaces=workspaces_for(data_dir, uids=private_uids()))
    code = DEEP_CHAIN.replace('os.chdir("/workspace")', "")
    result = await unsafe.run(language="python", code=textwrap.dedent(code), limits=LIMITS)
    assert result.stdout == "built\n", result.stderr
    assert result.unsafe_local
    assert run_dirs_of(unsafe.workspaces.scratch_owner()[0]) == []


# -- one conversation never reaches another's files ---------------------------------------


async def test_each_workspace_runs_as_its_own_host_uid(jail) -> None:
    for name in ("conv-a", "conv-b"):
        result = await sh(jail, "id -u; echo x > /workspace/mine", workspace=name)
        assert result.stdout == "65534\n", result.stderr  # inside, the jail user as ever
    owners = {jail.workspaces.owner(name) for name in ("conv-a", "conv-b")}
    files = {(jail.workspaces.path(n) / "mine").stat().st_uid for n in ("conv-a", "conv-b")}
    low, high = jail.workspaces.uid_range.first, jail.workspaces.uid_range.last
    assert len(owners) == 2 and len(files) == 2
    assert all(low < uid <= high for uid in files), files
    assert {uid for uid, _ in owners} == files


async def test_a_setuid_python_planted_in_a_workspace_is_useless_to_local_users(
    jail, workspace_fs: str, data_dir: Path
) -> None:
    jail.workspaces = workspaces_for(data_dir, fs=workspace_fs)
    code = "cp /usr/bin/python3 /workspace/py && chmod 6755 /workspace/py && chmod 755 /workspace"
    assert (await sh(jail, code, workspace="conv-plant")).exit_code == 0
    home = jail.workspaces.path("conv-plant")
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert not (home / "py").stat().st_mode & (stat.S_ISUID | stat.S_ISGID)
    if workspace_fs == "image":
        assert os.statvfs(home).f_flag & os.ST_NOSUID and os.statvfs(home).f_flag & os.ST_NODEV
    tried = as_local_user(f"import os; os.execv({str(home / 'py')!r}, ['py', '-c', 'print(1)'])")
    assert tried.returncode != 0 and "Permission denied" in tried.stderr


async def test_a_setuid_file_behind_more_entries_than_the_quick_walk_looks_at_is_stripped(
    jail, workspace_fs: str, data_dir: Path
) -> None:
    from sandbox.runs import QUICK_ENTRIES

    jail.workspaces = workspaces_for(data_dir, fs=workspace_fs)
    many = 4 * QUICK_ENTRIES  # the walk after the block goes off the event loop, whole
    code = (
        f"mkdir -p /workspace/a && touch $(seq -f '/workspace/a/f%g' 1 {many}) && "
        "cp /usr/bin/python3 /workspace/zz && chmod 6755 /workspace/zz"
    )
    assert (await sh(jail, code, workspace="conv-many")).exit_code == 0
    home = jail.workspaces.path("conv-many")
    assert len(os.listdir(home / "a")) == many
    assert not (home / "zz").stat().st_mode & (stat.S_ISUID | stat.S_ISGID)


async def test_a_workspace_opened_to_everyone_is_closed_again_after_and_before_each_run(
    jail,
) -> None:
    await sh(jail, "chmod 777 /workspace; echo $?", workspace="conv-open")
    home = jail.workspaces.path("conv-open")
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    home.chmod(0o777)  # as if something between runs opened it again
    seen = await sh(jail, "stat -c %a /workspace", workspace="conv-open")
    assert seen.stdout == "700\n"


async def test_device_nodes_in_a_workspace_are_removed_after_each_run(jail) -> None:
    made = await sh(jail, "mknod /workspace/wh c 0 0 && echo made", workspace="conv-dev")
    home = jail.workspaces.path("conv-dev")
    assert made.stdout == "made\n" and not (home / "wh").exists()
    os.mknod(home / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    await sh(jail, "true", workspace="conv-dev")
    assert not (home / "null").exists()


def _command_lines() -> list[list[str]]:
    """Our children's command lines (one that ended meanwhile, or is a zombie, has none)."""
    lines = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):  # ZombieProcess is one
            lines.append(child.cmdline())
    return lines


async def test_a_local_user_cannot_read_a_running_blocks_code_nor_see_its_workspace(
    jail,
) -> None:
    secret = "conv-" + os.urandom(6).hex()
    running = asyncio.ensure_future(
        py(jail, f"import time\n# the code is private: {secret}\ntime.sleep(3)", workspace=secret)
    )
    command_lines: list[list[str]] = []
    for _ in range(100):
        await asyncio.sleep(0.05)
        command_lines = [line for line in _command_lines() if "nsjail" in " ".join(line)]
        if command_lines:
            break
    await running
    assert command_lines, "the jail was never seen running"
    argv = command_lines[0]
    assert not any(secret in part for part in argv)
    code_file = next(part.split(":")[0] for part in argv if part.endswith(":/opsloop/code"))
    tried = as_local_user(f"print(open({code_file!r}).read())")
    assert secret not in tried.stdout and tried.returncode != 0


# -- expiry cannot be dodged -------------------------------------------------------------


async def test_a_block_cannot_dodge_expiry_by_dating_its_workspace_in_2100(jail) -> None:
    code = "touch -d 2100-01-01 /workspace/f /workspace && stat -c %Y /workspace"
    result = await sh(jail, code, workspace="conv-forever")
    assert int(result.stdout) > 4_000_000_000, result.stderr
    used = jail.workspaces.last_used("conv-forever")
    assert used is not None and abs(used - time.time()) < 120
    later = time.time() + jail.workspaces.idle_seconds + 60
    assert jail.workspaces.prune(now=later) == ["conv-forever"]


# -- less about the host inside the jail -------------------------------------------------


async def test_mountinfo_reveals_no_host_data_path_nor_the_workspace_name(
    jail, data_dir: Path
) -> None:
    result = await sh(jail, "cat /proc/self/mountinfo", workspace="conv-private-name")
    assert "/workspace" in result.stdout
    assert str(data_dir) not in result.stdout and "conv-private-name" not in result.stdout


async def test_proc_self_cgroup_does_not_reveal_opsloops_own_pid(jail) -> None:
    result = await sh(jail, "cat /proc/self/cgroup")
    assert result.exit_code == 0 and "memory:" in result.stdout
    assert f"-{os.getpid()}-" not in result.stdout and f"/{os.getpid()}" not in result.stdout


async def test_sandbox_check_says_how_workspaces_are_isolated(workspaces) -> None:
    from sandbox.check import diagnose

    found = await diagnose(workspace_root=workspaces.root)
    report = json.loads(json.dumps(found.to_dict()))
    assert report["workspace_fs"] == "ext4 image per workspace, mounted nosuid,nodev"
    assert report["workspace_uids"].startswith("one host uid per workspace")
