"""Shared fixtures of the sandbox integration tests: a real nsjail sandbox in a scratch data dir."""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from sandbox.errors import SandboxError
from sandbox.uids import UidRange
from sandbox.workspace import DEFAULT_RANGE, Workspaces
from tests.conftest import require_real


@pytest.fixture
def data_dir(jail_reachable_dir: Path) -> Path:
    """A data directory the jail user can traverse."""
    return jail_reachable_dir


@pytest.fixture
def workspaces(data_dir: Path) -> Workspaces:
    """Workspaces under the scratch data dir, 8 MiB each."""
    return Workspaces(root=data_dir / "workspaces", quota_bytes=8 << 20, idle_seconds=3600)


_PROBE: dict[str, str | None] = {}


class WarmJail:
    """The sandbox with warm kernels on, as the adversarial suite sees it.

    A Python block runs in a kernel: the kernel of its workspace, or, without one, the first
    block of a kernel of its own. After it, a canary block in the same kernel must get
    exactly its own result (its own output and exit status, the kernel warm or restarted):
    no hostile block of the suite may leave anything that changes the next block's result.
    A kernel made for one block is retired after its canary, so the suite's checks that
    nothing is left running apply to kernels too.
    """

    def __init__(self, sandbox: Any) -> None:
        object.__setattr__(self, "_sandbox", sandbox)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sandbox, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._sandbox, name, value)

    async def run(self, *, language: str, code: str, workspace: str | None = None, **kw: Any):  # type: ignore[no-untyped-def]
        if language != "python":
            return await self._sandbox.run(language=language, code=code, workspace=workspace, **kw)
        name = workspace or f"warm-{uuid.uuid4().hex[:12]}"
        result = await self._sandbox.run(language=language, code=code, workspace=name, **kw)
        await canary(self._sandbox, name, **kw)
        if workspace is None:
            await self._sandbox.kernels().retire(name)
        return result


async def canary(sandbox: Any, workspace: str, **kw: Any) -> None:
    """A block that prints a random token and exits 7 gets exactly that, in the same kernel."""
    from sandbox.kernel import RESTARTED
    from sandbox.limits import Limits

    limits = kw.pop("limits", None) or Limits()
    kw["limits"] = replace(limits, wall_seconds=max(limits.wall_seconds, 10.0))
    token = uuid.uuid4().hex
    code = f"print({token!r})\nraise SystemExit(7)"
    result = await sandbox.run(language="python", code=code, workspace=workspace, **kw)
    notice = RESTARTED + "\n" if result.kernel == "restarted" else ""
    assert (result.stdout, result.stderr, result.exit_code) == (f"{token}\n", notice, 7), result
    assert result.kernel in ("warm", "restarted") and not result.timed_out, result


async def real_jail(workspaces: Workspaces, *, warm: bool) -> Any:
    """A real in-process nsjail sandbox (warm kernels on or off); skips on a laptop without
    namespaces, FAILS in CI. The caller closes it (``aclose``)."""
    from sandbox.jail import NsjailSandbox
    from sandbox.kernels import KernelOptions

    kernels = KernelOptions(prestarted=0) if warm else None
    try:
        sandbox = NsjailSandbox.create(workspaces=workspaces, kernels=kernels)
    except SandboxError as exc:
        require_real(False, f"the nsjail sandbox cannot be set up here: {exc}")
    if "error" not in _PROBE:  # one real jail per session tells whether namespaces work
        try:
            await sandbox.run(language="bash", code="true")
            _PROBE["error"] = None
        except SandboxError as exc:
            _PROBE["error"] = str(exc)
    require_real(_PROBE["error"] is None, f"jails cannot be created here: {_PROBE['error']}")
    return sandbox


@pytest.fixture(params=["one-shot", "warm"])
async def jail(workspaces: Workspaces, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The real sandbox with warm kernels off and on (``WarmJail``: a canary after each
    Python block)."""
    sandbox = await real_jail(workspaces, warm=request.param == "warm")
    yield WarmJail(sandbox) if request.param == "warm" else sandbox
    await sandbox.aclose()


@pytest.fixture
async def default_jail(workspaces: Workspaces):  # type: ignore[no-untyped-def]
    """The real sandbox as opsloop.toml's defaults make it: warm kernels on."""
    sandbox = await real_jail(workspaces, warm=True)
    yield sandbox
    await sandbox.aclose()


def jail_processes(marker: str) -> list[str]:
    """Host processes whose argv[0] is ``marker``, whatever host uid they run as.

    The machine is shared (other jails may be running), so each test tags the processes it
    starts (argv[0]) and looks only for those. Not by uid: each workspace has a host uid of
    its own (``[sandbox] uid_range``), and a check by one uid would pass whatever ran.
    """
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmdline = proc.info["cmdline"] or []
            if cmdline and cmdline[0] == marker:
                found.append(f"{proc.pid} {' '.join(cmdline)}")
        except psutil.Error:
            continue
    return found


def marker() -> str:
    """A unique tag for the processes of one test."""
    return f"opsloop-test-{uuid.uuid4().hex[:12]}"


def workspaces_for(
    data_dir: Path,
    *,
    fs: str = "auto",
    quota_mb: int = 8,
    files: int = 10_000,
    name: str = "ws",
    uids: UidRange | None = DEFAULT_RANGE,
) -> Workspaces:
    """Workspaces under ``data_dir/name`` with the given filesystem kind, caps and uids."""
    return Workspaces(
        root=data_dir / name,
        quota_bytes=quota_mb << 20,
        idle_seconds=3600,
        max_files=files,
        uid_range=uids,
        fs=fs,
    )


def private_uids() -> UidRange:
    """A uid range no other test (nor another process on this machine) uses at once, so the
    scratch directories of its runs can be told apart by their owner."""
    first = 300_000 + (os.getpid() % 1000) * 100
    return UidRange(first, first + 99)


@pytest.fixture(params=["image", "directory"])
def workspace_fs(request: pytest.FixtureRequest) -> str:
    """Each workspace filesystem kind: a loop-mounted ext4 image, or a plain directory."""
    return str(request.param)


def as_local_user(code: str, *, uid: int = 12345) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` as another local user of the host (not root, not a jail uid)."""
    return subprocess.run(
        ["/usr/bin/python3", "-I", "-c", code],
        user=uid,
        group=uid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    )
