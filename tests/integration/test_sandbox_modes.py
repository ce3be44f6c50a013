"""Modes and edges of the sandbox: unsafe-local, a broken nsjail, workspace caps, the CLI."""

# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.errors import SandboxUnavailable
from sandbox.jail import NsjailSandbox
from sandbox.limits import Limits
from sandbox.unsafe import UnsafeLocalSandbox
from sandbox.workspace import Workspaces
from tests.integration.sandbox_fixtures import data_dir, jail, workspaces  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
OPSLOOP = [sys.executable, "-c", "from bot.cli import main; main()"]


async def test_unsafe_local_flags_every_result_and_warns_loudly(workspaces, caplog) -> None:
    caplog.set_level(logging.WARNING)
    sandbox = UnsafeLocalSandbox(workspaces=workspaces)
    result = await sandbox.run(language="bash", code="echo hi", workspace="c1")
    assert result.unsafe_local and result.stdout == "hi\n"
    warnings = [r for r in caplog.records if "WITHOUT isolation" in r.getMessage()]
    assert len(warnings) >= 2  # once when created, once per run


async def test_unsafe_local_still_enforces_the_wall_limit(workspaces) -> None:
    sandbox = UnsafeLocalSandbox(workspaces=workspaces)
    result = await sandbox.run(
        language="python", code="import time; time.sleep(30)", limits=Limits(wall_seconds=0.5)
    )
    assert result.timed_out and result.unsafe_local


async def test_a_missing_nsjail_is_unavailable_with_the_fix(workspaces, data_dir) -> None:
    with pytest.raises(SandboxUnavailable, match="OPSLOOP_NSJAIL"):
        NsjailSandbox.create(workspaces=workspaces, nsjail=data_dir / "no-such-nsjail")


async def test_when_namespaces_fail_no_code_runs_and_the_error_says_how_to_fix_it(
    workspaces, data_dir
) -> None:
    # A stand-in nsjail that fails the way nsjail does where user namespaces are forbidden.
    fake = data_dir / "nsjail"
    fake.write_text(
        "#!/bin/sh\n"
        'while [ "$1" != "--log" ]; do shift; done\n'
        'echo "[E][now][1] clone(flags=CLONE_NEWUSER|CLONE_NEWNS) failed: Operation not '
        'permitted" > "$2"\n'
        'echo "[F][now][1] Couldn\'t launch the child process" >> "$2"\n'
        "exit 255\n"
    )
    fake.chmod(0o755)
    sandbox = NsjailSandbox.create(workspaces=workspaces, nsjail=fake)
    with pytest.raises(SandboxUnavailable, match="unsafe-local"):
        await sandbox.run(language="python", code="print(1)")


async def test_a_directory_workspace_over_its_cap_is_emptied_and_the_block_told(
    data_dir, jail
) -> None:
    jail.workspaces = Workspaces(
        root=data_dir / "small", quota_bytes=1 << 20, idle_seconds=60, fs="directory"
    )
    result = await jail.run(
        language="bash",
        code="head -c 3000000 /dev/zero > /workspace/big; echo wrote",
        limits=Limits(wall_seconds=5),
        workspace="c1",
    )
    assert result.stdout == "wrote\n" and "was emptied" in result.stderr
    assert list((data_dir / "small" / "c1").iterdir()) == []


async def test_a_block_filling_its_directory_workspace_is_stopped_before_its_time_is_up(
    data_dir, jail
) -> None:
    jail.workspaces = Workspaces(
        root=data_dir / "small", quota_bytes=4 << 20, idle_seconds=60, fs="directory"
    )
    code = (
        "import itertools, os, time\n"
        "for i in itertools.count():\n"
        "    with open(f'/workspace/f{i}', 'wb') as f:\n"
        "        f.write(os.urandom(1 << 20))\n"
        "    time.sleep(0.05)\n"  # a steady writer that would fill the disk in 20 s
    )
    result = await jail.run(
        language="python", code=code, limits=Limits(wall_seconds=20), workspace="c1"
    )
    assert not result.timed_out and result.signal == 9
    assert "went over its cap" in result.stderr and "was emptied" in result.stderr
    assert list((data_dir / "small" / "c1").iterdir()) == []


async def test_a_block_filling_its_image_workspace_gets_no_space_at_the_cap(data_dir, jail) -> None:
    jail.workspaces = Workspaces(root=data_dir / "small", quota_bytes=4 << 20, idle_seconds=60)
    code = "head -c 9000000 /dev/zero > /workspace/big; echo status=$?; du -sk /workspace"
    result = await jail.run(
        language="bash", code=code, limits=Limits(wall_seconds=5), workspace="c1"
    )
    assert "No space left on device" in result.stderr and "status=1" in result.stdout
    assert int(result.stdout.split()[-2]) <= 4096 + 64  # KiB: the cap, and no more


@pytest.mark.parametrize("fs", ["image", "directory"])
def test_idle_workspaces_are_removed_and_fresh_ones_kept(data_dir, fs: str) -> None:
    spaces = Workspaces(root=data_dir / "ws", quota_bytes=1 << 20, idle_seconds=3600, fs=fs)
    old = spaces.prepare("old").path
    past = time.time() - 7200
    os.utime(spaces.root / ".meta" / "old.json", (past, past))  # opsloop's record of its use
    fresh = spaces.prepare("fresh").path
    assert spaces.prune() == ["old"]
    assert not old.exists() and fresh.exists()
    spaces.detach_all()


def test_an_unreachable_data_dir_is_unavailable_with_the_fix(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root's jail user (nobody) is blocked by a 0700 directory")
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    spaces = Workspaces(root=closed / "workspaces", quota_bytes=1 << 20, idle_seconds=60)
    with pytest.raises(SandboxUnavailable, match="OPSLOOP_DATA_DIR"):
        spaces.prepare("c1")


def run_cli(*args: str, stdin: str = "", data: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    env["OPSLOOP_DATA_DIR"] = str(data)
    return subprocess.run(
        [*OPSLOOP, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_the_cli_runs_a_block_as_json_and_exits_with_its_status(jail, data_dir) -> None:
    done = run_cli(
        "sandbox",
        "run",
        "--json",
        "--timeout",
        "5",
        "-",
        stdin="print('hi')\nraise SystemExit(3)\n",
        data=data_dir,
    )
    assert done.returncode == 3, done.stderr
    result = json.loads(done.stdout)
    assert result["stdout"] == "hi\n" and result["exit_code"] == 3
    assert list(result) == [
        "exit_code",
        "signal",
        "stdout",
        "stderr",
        "duration_ms",
        "timed_out",
        "memory_exceeded",
        "output_truncated",
        "cpu_ms",
        "unsafe_local",
        "kernel",
    ]


def test_the_cli_prints_the_output_of_a_bash_file(jail, data_dir) -> None:
    script = data_dir / "block.sh"
    script.write_text("echo out; echo err >&2; exit 5\n")
    done = run_cli("sandbox", "run", "--lang", "bash", str(script), data=data_dir)
    assert (done.returncode, done.stdout, done.stderr) == (5, "out\n", "err\n")


def test_the_cli_reports_bad_input_in_one_line(jail, data_dir) -> None:
    done = run_cli("sandbox", "run", "--lang", "cobol", "-", stdin="x", data=data_dir)
    assert done.returncode == 2
    assert done.stderr.strip() == ("opsloop: unknown language 'cobol' (use one of: python, bash)")
    done = run_cli("sandbox", "run", "--memory", "1", "-", stdin="print(1)", data=data_dir)
    assert done.returncode == 2 and "memory_mb=1 is out of range" in done.stderr
    assert "Traceback" not in done.stderr


def test_sandbox_check_reports_jails_enforcement_and_version(jail, data_dir) -> None:
    done = run_cli("sandbox", "check", "--json", data=data_dir)
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["jails_work"] is True
    assert report["enforcement"] in {"cgroup v2", "cgroup v1", "rlimit only"}
    assert report["nsjail_version"]


async def test_without_cgroups_memory_degrades_to_an_address_space_limit(jail) -> None:
    from sandbox.cgroups import CgroupSetup

    degraded = NsjailSandbox(
        nsjail=jail.nsjail,
        layout=jail.layout,
        cgroups=CgroupSetup(kind="none", reason="test"),
        workspaces=jail.workspaces,
    )
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(8 * 1024 * 1024))\n"
    result = await degraded.run(
        language="python", code=code, limits=Limits(wall_seconds=5, memory_mb=64)
    )
    assert result.exit_code == 1 and "MemoryError" in result.stderr
    assert not result.memory_exceeded  # RLIMIT_AS failures cannot be told apart (documented)


async def test_an_interpreter_the_jail_cannot_exec_is_unavailable_not_a_failed_block(
    jail,
) -> None:
    from dataclasses import replace

    from sandbox.layout import Interpreter

    jail.layout = replace(
        jail.layout, interpreters=(Interpreter(language="python", path="/nonexistent/python"),)
    )
    with pytest.raises(SandboxUnavailable, match="execve"):
        await jail.run(language="python", code="print(1)")
