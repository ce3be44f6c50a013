"""Several sandbox services behind one ``OPSLOOP_SANDBOX_URL``: a workspace stays on one.

The routing rule (rendezvous hashing) is checked with hypothesis; the routed client runs
against two real sandbox services on loopback, each with a runner (our port) that notes
which workspaces it saw.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator

from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from sandbox.files import Outbox, StoredFile
from sandbox.result import RunResult
from sandbox.routing import RoutedSandbox, replica_for, split_urls

URLS = st.lists(
    st.from_regex(r"http://sandbox-[0-9]{1,3}:8700", fullmatch=True), min_size=2, max_size=6
).map(lambda urls: sorted(set(urls)))


@given(URLS, st.text(min_size=1, max_size=40))
def test_a_workspace_moves_only_when_its_own_replica_goes(urls: list[str], key: str) -> None:
    chosen = replica_for(key, urls)
    assert chosen in urls
    assert replica_for(key, list(reversed(urls))) == chosen  # the order of the list is no matter
    for gone in urls:
        rest = [u for u in urls if u != gone]
        if rest and gone != chosen:
            assert replica_for(key, rest) == chosen


def test_the_url_setting_is_split_on_commas() -> None:
    assert split_urls(" http://a:1, http://b:2 ,,") == ["http://a:1", "http://b:2"]


class NotingRunner:
    """A sandbox runner that notes the workspaces it ran in, and whose files it kept."""

    def __init__(self) -> None:
        self.workspaces: list[str | None] = []
        self.files: list[tuple[str, str]] = []  # (what, workspace)

    async def run(self, *, workspace: str | None = None, **_: object) -> RunResult:
        self.workspaces.append(workspace)
        return RunResult(exit_code=0, signal=None, stdout="", stderr="", duration_ms=1)

    async def put_file(self, *, workspace: str, name: str, data: bytes) -> StoredFile:
        self.files.append(("inbox", workspace))
        return StoredFile(name=name, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())

    async def read_outbox(self, *, workspace: str, **_: object) -> Outbox:
        self.files.append(("outbox", workspace))
        return Outbox()


@contextlib.asynccontextmanager
async def two_services() -> AsyncIterator[tuple[list[NotingRunner], list[str], RoutedSandbox]]:
    """Two real sandbox services on loopback, each over a noting runner, and the routed
    client over both."""
    from sandbox.service import ServiceOptions, make_app

    runners = [NotingRunner(), NotingRunner()]
    servers = [
        TestServer(make_app(runner=r, options=ServiceOptions(token="t")), host="127.0.0.1")
        for r in runners
    ]
    for server in servers:
        await server.start_server()
    urls = [str(s.make_url("")).rstrip("/") for s in servers]
    routed = RoutedSandbox.from_urls(urls, token="t")
    try:
        yield runners, urls, routed
    finally:
        await routed.aclose()
        for server in servers:
            await server.close()


async def test_every_run_of_a_workspace_goes_to_the_same_service() -> None:
    async with two_services() as (runners, urls, routed):
        for _ in range(3):
            for n in range(20):
                await routed.run(language="bash", code="true", workspace=f"conversation-{n}")
        pinged = await routed.ping()
    seen = [set(r.workspaces) for r in runners]
    assert seen[0] and seen[1] and not seen[0] & seen[1]  # both used, never the same one
    assert all(r.workspaces.count(w) == 3 for r in runners for w in set(r.workspaces))
    for n in range(20):
        home = urls.index(replica_for(f"conversation-{n}", urls))
        assert f"conversation-{n}" in seen[home]
    assert all(url in pinged for url in urls)


async def test_a_workspaces_files_go_to_the_service_that_runs_its_blocks() -> None:
    workspaces = [f"conversation-{n}" for n in range(12)]
    async with two_services() as (runners, urls, routed):
        for w in workspaces:
            stored = await routed.put_file(workspace=w, name="app.log", data=b"x")
            await routed.run(language="python", code="print(1)", workspace=w)
            outbox = await routed.read_outbox(workspace=w, max_files=10, max_bytes=1024)
            assert stored.bytes == 1 and outbox == Outbox()
    for w in workspaces:
        home = runners[urls.index(replica_for(w, urls))]
        assert w in home.workspaces
        assert ("inbox", w) in home.files and ("outbox", w) in home.files
    assert all(r.files for r in runners)  # both replicas kept files
