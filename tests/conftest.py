"""Shared fixtures.

Unit tests of the loop and the service take ``memory_app``: the real application on the
in-memory store, so the domain they exercise is the product's own.

Tests that need a real part (PostgreSQL, nsjail) call ``require_real``: on a developer
laptop without that part they skip with the reason printed; under CI (``CI=true``) they
fail, because CI is meant to run them.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bot.app.application import ConversationApp

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_real(available: bool, reason: str) -> None:
    """Skip (developer laptop) or fail (CI) when a real part is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"CI must run this test but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def memory_app() -> Iterator[ConversationApp]:
    """The real conversation application on the in-memory store (unit tests fake only ports)."""
    from bot.app.application import open_app

    app = open_app(database_url="memory:")
    yield app
    app.close()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a real PostgreSQL database (scripts/test starts one on loopback)."""
    url = os.environ.get("OPSLOOP_TEST_POSTGRES_URL", "")
    require_real(
        bool(url),
        "OPSLOOP_TEST_POSTGRES_URL is not set (scripts/test sets it when the PostgreSQL "
        "server binaries are installed: apt-get install postgresql)",
    )
    return url


def mounts_below(path: Path) -> list[str]:
    """Mount points at or below ``path`` (deepest first), from this process's mount table."""
    prefix = str(path).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as table:
        for line in table:
            point = line.split()[4].encode().decode("unicode_escape")
            if point.startswith(prefix):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def remove_test_dir(path: Path) -> None:
    """Unmount what a test left mounted below ``path``, then delete it as the sandbox would
    (``shutil.rmtree`` dies with ``RecursionError`` on the deep trees hostile blocks make)."""
    from sandbox import tree

    for point in mounts_below(path):
        subprocess.run(["umount", point], check=False, capture_output=True)
    tree.remove_path(path, budget=tree.Budget(seconds=60))


@pytest.fixture
def jail_reachable_dir() -> Iterator[Path]:
    """A temporary directory the sandbox's jail user (host uid 65534) can traverse.

    pytest's ``tmp_path`` sits under ``/tmp/pytest-of-<user>`` (mode 0700), which the jail
    user cannot enter, so data directories and workspaces of real-jail tests live here.
    """
    path = Path(tempfile.mkdtemp(prefix="opsloop-test-"))
    path.chmod(0o755)
    yield path
    remove_test_dir(path)
