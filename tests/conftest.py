"""Shared fixtures.

Tests that need a real part (PostgreSQL, nsjail) call ``require_real``: on a developer
laptop without that part they skip with the reason printed; under CI (``CI=true``) they
fail, because CI is meant to run them.
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_real(available: bool, reason: str) -> None:
    """Skip (developer laptop) or fail (CI) when a real part is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"CI must run this test but {reason}", pytrace=False)
    pytest.skip(reason)


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
