"""Shared fixtures of the sandbox integration tests: a real nsjail sandbox in a scratch data dir."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from sandbox.errors import SandboxError
from sandbox.layout import JAIL_UID, jail_owner
from sandbox.workspace import Workspaces
from tests.conftest import require_real


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory the jail user can traverse (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="opsloop-sbx-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def workspaces(data_dir: Path) -> Workspaces:
    """Workspaces under the scratch data dir, 8 MiB each."""
    return Workspaces(root=data_dir / "workspaces", quota_bytes=8 << 20, idle_seconds=3600)


@pytest.fixture
def jail(workspaces: Workspaces):  # type: ignore[no-untyped-def]
    """A real in-process nsjail sandbox; skips on a laptop without namespaces, FAILS in CI."""
    from sandbox.jail import NsjailSandbox

    try:
        sandbox = NsjailSandbox.create(workspaces=workspaces)
    except SandboxError as exc:
        require_real(False, f"the nsjail sandbox cannot be set up here: {exc}")
    return sandbox


def jail_processes() -> list[str]:
    """Host processes running as the jail's host uid (there must be none between runs)."""
    uid = jail_owner()[0]
    if uid != JAIL_UID:  # not root: the jail runs as us, so count nothing we cannot tell apart
        return []
    found = []
    for proc in psutil.process_iter(["uids", "cmdline", "pid"]):
        try:
            if proc.info["uids"] and proc.info["uids"].real == uid and proc.pid != os.getpid():
                found.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])}")
        except psutil.Error:
            continue
    return found
