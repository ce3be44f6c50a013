"""Several sandbox services, each conversation's workspace always on the same one.

A workspace (``/workspace``, one per conversation) lives on the disk of the sandbox
replica that ran its first block: a loop-mounted ext4 image, its own host uid and records
under ``.meta``, none of which may be shared between hosts (two hosts mounting one image
corrupt it). So rather than one shared volume, each replica keeps its own workspaces and
the bot routes every run of a workspace to the same replica: ``OPSLOOP_SANDBOX_URL`` lists
the replicas, comma-separated (a Kubernetes StatefulSet's stable names), and the replica of
a workspace is chosen by rendezvous hashing, so adding or removing one replica moves only
the workspaces that hashed to it.

A replica that is down is not replaced by another for its workspaces (the block would find
its files missing): the run fails with the replica's own error, and is retried by the
client as usual. Runs without a workspace go to the replica of their code's hash. A
workspace's files (its inbox and outbox) go to its replica too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from typing import Any

from sandbox.client import SandboxClient
from sandbox.files import Outbox, StoredFile
from sandbox.limits import Limits
from sandbox.relay import ToolRelay
from sandbox.result import RunResult


def split_urls(value: str) -> list[str]:
    """The URLs of a comma-separated ``OPSLOOP_SANDBOX_URL`` (blanks ignored)."""
    return [part.strip() for part in value.split(",") if part.strip()]


def replica_for(key: str, urls: Sequence[str]) -> str:
    """The URL whose hash with ``key`` is highest (rendezvous hashing): stable per key."""
    return max(urls, key=lambda url: hashlib.sha256(f"{url}\0{key}".encode()).digest())


class RoutedSandbox:
    """A ``Sandbox`` over several services, sticky per workspace."""

    def __init__(self, clients: Sequence[SandboxClient]) -> None:
        self.clients = {c.url: c for c in clients}
        self.url = ",".join(self.clients)

    @classmethod
    def from_urls(cls, urls: Sequence[str], **options: Any) -> RoutedSandbox:
        """One ``SandboxClient`` per URL, with the same token and options."""
        return cls([SandboxClient(url=url, **options) for url in urls])

    def client_for(self, workspace: str | None, code: str = "") -> SandboxClient:
        """The service that keeps ``workspace`` (or runs this workspace-less code)."""
        key = workspace if workspace is not None else f"\0code\0{code}"
        return self.clients[replica_for(key, list(self.clients))]

    async def run(
        self,
        *,
        language: str,
        code: str,
        limits: Limits | None = None,
        workspace: str | None = None,
        tools: ToolRelay | None = None,
        mounts: Sequence[str] = (),
    ) -> RunResult:
        """Run one block on the replica of its workspace."""
        return await self.client_for(workspace, code).run(
            language=language,
            code=code,
            limits=limits,
            workspace=workspace,
            tools=tools,
            mounts=mounts,
        )

    async def put_file(self, *, workspace: str, name: str, data: bytes) -> StoredFile:
        """Save a file in the inbox of the workspace, on its replica."""
        return await self.client_for(workspace).put_file(workspace=workspace, name=name, data=data)

    async def read_outbox(
        self,
        *,
        workspace: str,
        sent: Collection[tuple[str, str]] = (),
        max_files: int,
        max_bytes: int,
    ) -> Outbox:
        """What the workspace's outbox holds that was not sent, from its replica."""
        return await self.client_for(workspace).read_outbox(
            workspace=workspace, sent=sent, max_files=max_files, max_bytes=max_bytes
        )

    async def ping(self) -> str:
        """Every replica answers (each keeps workspaces no other can serve)."""
        answers = [await c.ping() for c in self.clients.values()]
        return "; ".join(answers)

    async def aclose(self) -> None:
        """Close every client's connections."""
        for client in self.clients.values():
            await client.aclose()
