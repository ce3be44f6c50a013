"""Files in and out of a conversation's workspace, for every surface.

In: the attachments of a recorded message are checked against ``[files]`` (count, then the
size the platform declares, then the bytes that arrive), downloaded by the surface's own
``fetch`` and saved in ``/workspace/inbox`` by the sandbox; each is recorded as
``FileReceived`` or ``FileRefused`` before the loop runs, so the model is told of it.

Out: when the loop answers, the regular files of ``/workspace/outbox`` not sent before (by
name and sha256) are read by the sandbox, bounded by the same caps, and each is recorded as
``FileSent`` before the answer; the surface uploads them with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from bot.errors import FileNotFetched, one_line
from bot.ports import Sandbox
from bot.surface import Attachment, FileNote
from domain.redaction import Redactor
from sandbox.errors import SandboxError
from sandbox.filenames import safe_name
from sandbox.files import Outbox, OutboxFile, Skipped

log = logging.getLogger(__name__)
T = TypeVar("T")
MB = 1024 * 1024


@dataclass(frozen=True)
class FileCaps:
    """``[files]`` as the loop uses it."""

    max_files: int = 10
    max_bytes: int = 20 * MB

    @classmethod
    def from_policy(cls, files: Any) -> FileCaps:
        """From ``bot.config.FilesPolicy``."""
        return cls(max_files=files.max_files, max_bytes=files.max_mb * MB)


async def _thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def receive(
    app: Any,
    sandbox: Sandbox,
    cid: UUID,
    *,
    workspace: str,
    files: Sequence[Attachment],
    by: str,
    caps: FileCaps,
) -> list[FileNote]:
    """Save each attachment in the inbox, or refuse it; record which, in order."""
    notes = []
    for index, attachment in enumerate(files):
        shown = safe_name(attachment.name)
        try:
            if index >= caps.max_files:
                raise FileNotFetched(f"more than {caps.max_files} files in one message")
            data = await _download(attachment, caps.max_bytes)
            put_file = getattr(sandbox, "put_file", None)
            if put_file is None:  # a sandbox that predates files (a stand-in)
                raise FileNotFetched("this sandbox takes no files")
            stored = await put_file(workspace=workspace, name=attachment.name, data=data)
        except (FileNotFetched, SandboxError) as exc:
            reason = one_line(exc)
            await _thread(app.record_file_refused, cid, name=shown, reason=reason, by=by)
            notes.append(FileNote(name=shown, refused=reason))
            continue
        await _thread(
            app.record_file_received,
            cid,
            name=stored.name,
            size=stored.bytes,
            sha256=stored.sha256,
            by=by,
        )
        notes.append(FileNote(name=stored.name, bytes=stored.bytes))
    return notes


async def _download(attachment: Attachment, most: int) -> bytes:
    """The attachment's bytes, within ``most`` (declared size checked first)."""
    over = f"over the limit of {most // MB} MB ([files] max_mb)"
    if attachment.size is not None and attachment.size > most:
        raise FileNotFetched(f"{attachment.size} bytes, {over}")
    try:
        data = await attachment.fetch(most)
    except FileNotFetched:
        raise
    except Exception as exc:  # a surface's download failed: the message goes on without it
        raise FileNotFetched(f"could not be downloaded ({one_line(exc)})") from None
    if len(data) > most:
        raise FileNotFetched(f"{over}")
    return data


async def send(
    app: Any,
    sandbox: Sandbox,
    cid: UUID,
    *,
    workspace: str,
    caps: FileCaps,
    call: Callable[..., Awaitable[Any]],
    redactor: Redactor | None = None,
) -> Outbox:
    """Read what the outbox holds that was not sent, redacted, and record each file as sent."""
    read_outbox = getattr(sandbox, "read_outbox", None)
    if read_outbox is None:  # a sandbox that predates files (a stand-in): nothing to send
        return Outbox()
    timeline = await call(app.timeline, cid)
    sent = {(e["name"], e["sha256"]) for e in timeline if e.get("type") == "FileSent"}
    try:
        found = await read_outbox(
            workspace=workspace, sent=sent, max_files=caps.max_files, max_bytes=caps.max_bytes
        )
    except SandboxError as exc:  # the answer goes out without files: say so in the log
        log.warning("conversation %s: the outbox could not be read: %s", cid, one_line(exc))
        return Outbox()
    if redactor is not None:
        found = await asyncio.to_thread(redacted, found, redactor, sent=sent)
    for file in found.files:
        await call(
            app.record_file_sent, cid, name=file.name, size=len(file.data), sha256=file.sha256
        )
    return found


def redacted(found: Outbox, redactor: Redactor, *, sent: set[tuple[str, str]]) -> Outbox:
    """The outbox as it may leave opsloop: a text file with a secret in it goes out redacted
    (once: a redacted copy sent before is not sent again); a binary file with one is not sent
    at all, as it cannot be redacted without breaking it."""
    files, skipped = [], list(found.skipped)
    for file in found.files:
        try:
            text: str | None = file.data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None:
            if redactor.redact(file.data.decode("latin-1")).redactions:
                skipped.append(Skipped(file.name, "holds a secret and is not text; not sent"))
            else:
                files.append(file)
            continue
        clean = redactor.redact(text)
        if not clean.redactions:
            files.append(file)
            continue
        data = clean.text.encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        if (file.name, digest) not in sent:
            files.append(OutboxFile(name=file.name, data=data, sha256=digest))
    return Outbox(files=tuple(files), skipped=tuple(skipped))
