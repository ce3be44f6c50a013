"""Named read-only mounts in a real nsjail: readable at /mnt/NAME, never writable, never a way
out, and only by the names the sandbox's own configuration gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sandbox.errors import BadRequest, SandboxError, SandboxUnavailable
from sandbox.layout import LayoutOptions
from sandbox.limits import Limits
from sandbox.workspace import Workspaces
from tests.conftest import remove_test_dir, require_real

pytestmark = pytest.mark.nsjail
ROOT = Path(__file__).resolve().parents[2]
SHORT = Limits(wall_seconds=5)


@pytest.fixture
def host(jail_reachable_dir: Path) -> Path:
    """A host tree: logs to offer (one part world-writable on the host), a secret beside it."""
    logs = jail_reachable_dir / "logs"
    (logs / "open").mkdir(parents=True)
    (logs / "app.log").write_text("line one\nERROR two\n")
    (logs / "open").chmod(0o777)
    (logs / "open" / "scratch.txt").write_text("anyone may write me on the host\n")
    (logs / "open" / "scratch.txt").chmod(0o666)
    (logs / "etc").symlink_to("/etc")  # absolute: resolved in the jail's view
    (logs / "up").symlink_to("../..")  # relative, climbing out: also the jail's view
    (jail_reachable_dir / "secret.txt").write_text("host secret\n")
    (jail_reachable_dir / "other").mkdir()
    (jail_reachable_dir / "other" / "notes.txt").write_text("other mount\n")
    return jail_reachable_dir


async def _sandbox(host: Path, mounts: dict[str, str]):  # type: ignore[no-untyped-def]
    from sandbox.jail import NsjailSandbox

    workspaces = Workspaces(root=host / "ws", quota_bytes=1 << 20, idle_seconds=60, fs="directory")
    try:
        sandbox = NsjailSandbox.create(workspaces=workspaces, options=LayoutOptions(mounts=mounts))
        await sandbox.run(language="bash", code="true")
    except SandboxUnavailable as exc:
        require_real(False, f"jails cannot run here: {exc}")
    return sandbox


@pytest.fixture
async def mounted(host: Path) -> AsyncIterator[object]:
    sandbox = await _sandbox(host, {"logs": str(host / "logs"), "other": str(host / "other")})
    yield sandbox
    await sandbox.aclose()


async def sh(sandbox, code: str, mounts=("logs",)):  # type: ignore[no-untyped-def]
    return await sandbox.run(language="bash", code=code, limits=SHORT, mounts=mounts)


async def test_a_named_mount_is_readable_at_mnt_name(mounted) -> None:
    result = await sh(mounted, "grep ERROR /mnt/logs/app.log; ls /mnt")
    assert result.stdout == "ERROR two\nlogs\n", result.stderr


async def test_a_run_gets_only_the_mounts_it_names_and_none_without(mounted) -> None:
    both = await sh(mounted, "ls /mnt", mounts=("other", "logs", "other"))
    none = await sh(mounted, "ls /mnt; echo status=$?", mounts=())
    assert both.stdout == "logs\nother\n"
    assert none.stdout == "status=2\n" and "No such file" in none.stderr


async def test_writes_through_a_mount_fail_even_where_the_host_allows_them(
    mounted, host: Path
) -> None:
    code = """
        for attempt in \\
            'echo x >> /mnt/logs/open/scratch.txt' 'touch /mnt/logs/open/new' \\
            'rm /mnt/logs/open/scratch.txt' 'mkdir /mnt/logs/open/d' \\
            'mv /mnt/logs/app.log /mnt/logs/open/' 'chmod 777 /mnt/logs/app.log' \\
            'ln -s /x /mnt/logs/open/link' 'truncate -s 0 /mnt/logs/open/scratch.txt' \\
            'mount -o remount,rw /mnt/logs' 'mount -o remount,rw,bind /mnt/logs' \\
            'umount /mnt/logs'; do
          if eval "$attempt" 2>/dev/null; then echo "WROTE: $attempt"; else echo refused; fi
        done
        python3 -c 'import os; os.chmod("/mnt/logs/open", 0o700)' 2>&1 | tail -1
        python3 -c 'open("/mnt/logs/open/scratch.txt", "a")' 2>&1 | tail -1
    """
    result = await sh(mounted, textwrap.dedent(code))
    lines = result.stdout.splitlines()
    assert lines[:11] == ["refused"] * 11, result.stdout
    assert lines[11:] == [
        "OSError: [Errno 30] Read-only file system: '/mnt/logs/open'",
        "OSError: [Errno 30] Read-only file system: '/mnt/logs/open/scratch.txt'",
    ]
    assert (host / "logs" / "open" / "scratch.txt").read_text() == (
        "anyone may write me on the host\n"
    )
    assert sorted(os.listdir(host / "logs" / "open")) == ["scratch.txt"]


async def test_dot_dot_and_symlinks_inside_a_mount_resolve_in_the_jails_view(mounted) -> None:
    code = """
        cat /mnt/logs/../../secret.txt 2>&1 | head -1
        cat /mnt/logs/up/secret.txt 2>&1 | head -1
        ls /mnt/logs/etc/
        ls /mnt/logs/up/
        readlink -f /mnt/logs/up
    """
    result = await sh(mounted, textwrap.dedent(code))
    lines = result.stdout.splitlines()
    assert "No such file" in lines[0] and "No such file" in lines[1], result.stdout
    assert "passwd" not in lines and "shadow" not in lines  # the jail's /etc, not the host's
    assert "host secret" not in result.stdout
    assert lines[-1] == "/"  # up -> ../.. from /mnt/logs is the jail's root


async def test_unknown_and_path_like_mount_names_are_bad_requests(mounted) -> None:
    for name in ("../../etc", "/etc", "nope", "logs/..", "", "a" * 65):
        with pytest.raises(BadRequest, match="mount"):
            await sh(mounted, "true", mounts=(name,))
    with pytest.raises(BadRequest, match="list of names"):
        await sh(mounted, "true", mounts="logs")  # type: ignore[arg-type]


async def test_a_symlinked_host_path_is_resolved_on_the_host_once(host: Path) -> None:
    (host / "logs-link").symlink_to(host / "logs")
    sandbox = await _sandbox(host, {"logs": str(host / "logs-link")})
    try:
        assert dict(sandbox.layout.mounts) == {"logs": str(host / "logs")}
        result = await sh(sandbox, "cat /mnt/logs/app.log | head -1")
        assert result.stdout == "line one\n"
    finally:
        await sandbox.aclose()


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("relative/logs", "absolute path"),
        ("{host}/logs/../secret.txt", "without '..'"),
        ("{host}/missing", "does not exist"),
        ("{host}/closed/inside", "cannot reach"),
    ],
)
async def test_a_mount_that_is_not_a_plain_reachable_path_stops_the_sandbox_at_start(
    host: Path, path: str, problem: str
) -> None:
    (host / "closed" / "inside").mkdir(parents=True)
    (host / "closed").chmod(0o700)
    from sandbox.jail import NsjailSandbox

    workspaces = Workspaces(root=host / "ws", quota_bytes=1 << 20, idle_seconds=60, fs="directory")
    with pytest.raises(SandboxError, match=problem):
        NsjailSandbox.create(
            workspaces=workspaces, options=LayoutOptions(mounts={"m": path.format(host=host)})
        )


async def test_a_mount_with_a_filesystem_mounted_below_it_is_refused_before_a_run(
    mounted, host: Path
) -> None:
    below = host / "logs" / "open"
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=777", "none", str(below)], check=True
    )
    try:
        with pytest.raises(SandboxUnavailable, match="mounted below it"):
            await sh(mounted, "touch /mnt/logs/open/escaped")
        unrelated = await sh(mounted, "cat /mnt/other/notes.txt", mounts=("other",))
        assert unrelated.stdout == "other mount\n"
    finally:
        subprocess.run(["umount", str(below)], check=True)
    assert not (below / "escaped").exists()


def _cli(*args: str, host: Path, config: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    (host / "opsloop.toml").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    env |= {"OPSLOOP_DATA_DIR": str(host / "data"), "OPSLOOP_CONFIG": str(host / "opsloop.toml")}
    return subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_sandbox_check_lists_the_mounts_and_names_a_broken_one(host: Path) -> None:
    config = f'[sandbox.mounts]\nlogs = "{host / "logs"}"\ngone = "{host / "missing"}"\n'
    text = _cli("sandbox", "check", host=host, config=config)
    report = json.loads(_cli("sandbox", "check", "--json", host=host, config=config).stdout)
    assert f"mount:             /mnt/logs <- {host / 'logs'} (read-only)" in text.stdout
    assert report["mounts"] == {"/mnt/logs": str(host / "logs")}
    assert f"mount gone: {host / 'missing'} does not exist" in report["problems"]
    assert report["jails_work"] is True  # a broken mount does not hide the rest


def test_sandbox_run_takes_mount_names_and_refuses_a_path_like_one(host: Path) -> None:
    config = f'[sandbox.mounts]\nlogs = "{host / "logs"}"\n'
    run = ("sandbox", "run", "--lang", "bash", "--mount")
    ran = _cli(*run, "logs", "-", host=host, config=config, stdin="head -1 /mnt/logs/app.log")
    refused = _cli(*run, "../../etc", "-", host=host, config=config, stdin="true")
    assert ran.returncode == 0 and ran.stdout == "line one\n", ran.stderr
    assert refused.returncode == 2 and "invalid mount name '../../etc'" in refused.stderr


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    """A host directory outside /tmp (the jail has a /tmp of its own), traversable by all."""
    path = Path(tempfile.mkdtemp(prefix="opsloop-test-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    remove_test_dir(path)


async def test_a_filesystem_mounted_below_an_extra_mount_is_read_only_in_the_jail_too(
    outside_tmp: Path,
) -> None:
    from sandbox.jail import NsjailSandbox

    offered = outside_tmp / "venv"
    below = offered / "cache"
    below.mkdir(parents=True)
    offered.chmod(0o755)
    workspaces = Workspaces(
        root=outside_tmp / "ws", quota_bytes=1 << 20, idle_seconds=60, fs="directory"
    )
    options = LayoutOptions(extra_mounts=(str(offered),))
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=777", "none", str(below)], check=True
    )
    try:
        (below / "seen.txt").write_text("on the host's tmpfs\n")
        (below / "seen.txt").chmod(0o666)
        try:
            sandbox = NsjailSandbox.create(workspaces=workspaces, options=options)
        except SandboxUnavailable as exc:
            require_real(False, f"jails cannot run here: {exc}")
        code = (
            f"cat {below}/seen.txt; echo x >> {below}/seen.txt; echo append=$?; "
            f"touch {below}/escaped; echo touch=$?"
        )
        result = await sandbox.run(language="bash", code=code, limits=SHORT)
        await sandbox.aclose()
        assert result.stdout.splitlines() == ["on the host's tmpfs", "append=1", "touch=1"]
        assert "Read-only file system" in result.stderr
        assert not (below / "escaped").exists()
        assert (below / "seen.txt").read_text() == "on the host's tmpfs\n"
    finally:
        subprocess.run(["umount", str(below)], check=True)


def test_an_extra_mount_the_jail_would_hide_under_its_own_tmp_is_refused_at_start(
    host: Path,
) -> None:
    from sandbox.layout import discover_layout

    with pytest.raises(SandboxUnavailable, match="under /tmp, which the jail has its own of"):
        discover_layout(LayoutOptions(extra_mounts=(str(host / "logs"),)))
