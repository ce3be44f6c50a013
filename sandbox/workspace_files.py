"""The files of a named workspace: save one in its inbox, read what its outbox holds.

``WorkspaceFiles`` gives the in-process sandboxes (nsjail and unsafe-local) the two methods
of the ``Sandbox`` port for files; the service serves the same two (``sandbox.service_files``)
and its client calls them. The walking and the rules are ``sandbox.files``'.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Collection

from sandbox.files import Outbox, StoredFile, open_root, read_outbox, write_inbox
from sandbox.request import check_workspace
from sandbox.workspace import Workspaces


def put_file(workspaces: Workspaces, *, workspace: str, name: str, data: bytes) -> StoredFile:
    """Save ``data`` in workspace ``workspace``'s inbox (created if need be) under a safe,
    unused name derived from ``name`` (blocking I/O)."""
    prepared = workspaces.prepare(check_workspace(workspace))
    root = open_root(prepared.path)
    try:
        return write_inbox(
            root,
            name=name,
            data=data,
            owner=prepared.owner,
            quota_bytes=workspaces.quota_bytes if workspaces.fs == "directory" else None,
            max_files=workspaces.max_files,
        )
    finally:
        os.close(root)


def outbox_of(
    workspaces: Workspaces,
    *,
    workspace: str,
    sent: Collection[tuple[str, str]],
    max_files: int,
    max_bytes: int,
) -> Outbox:
    """What workspace ``workspace``'s outbox holds that was not sent (blocking I/O); nothing
    when the workspace does not exist."""
    if workspaces.owner(check_workspace(workspace)) is None:
        return Outbox()
    prepared = workspaces.prepare(workspace)  # an idle image is mounted again
    root = open_root(prepared.path)
    try:
        return read_outbox(root, sent=sent, max_files=max_files, max_bytes=max_bytes)
    finally:
        os.close(root)


class WorkspaceFiles:
    """The ``Sandbox`` port's file methods, for a sandbox holding its ``workspaces``."""

    workspaces: Workspaces

    async def put_file(self, *, workspace: str, name: str, data: bytes) -> StoredFile:
        """Save a file in the workspace's ``/workspace/inbox``; its name as saved."""
        return await asyncio.to_thread(
            put_file, self.workspaces, workspace=workspace, name=name, data=data
        )

    async def read_outbox(
        self,
        *,
        workspace: str,
        sent: Collection[tuple[str, str]] = (),
        max_files: int,
        max_bytes: int,
    ) -> Outbox:
        """The files of the workspace's ``/workspace/outbox`` not in ``sent`` (name, sha256)."""
        return await asyncio.to_thread(
            outbox_of,
            self.workspaces,
            workspace=workspace,
            sent=tuple(sent),
            max_files=max_files,
            max_bytes=max_bytes,
        )
