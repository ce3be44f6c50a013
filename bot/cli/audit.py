"""``opsloop audit verify | checkpoint | export``: proving the log untampered.

Every audit command is read-only: it opens its own SELECT-only connection
(``bot.audit.reader``), creates no table and catches nothing up, so an auditor with a
SELECT-only role, or a copy of the store on a full disk, can run it. The audit key comes
from ``OPSLOOP_AUDIT_KEY`` or ``OPSLOOP_AUDIT_KEY_FILE``; the cipher key, when the store is
encrypted, from ``OPSLOOP_CIPHER_KEY``. What the store holds is printed through
``bot.visible``. Exit status: 0 intact, 1 tampered, 2 a key or usage problem (one line).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.errors import ConfigError, OpsloopError
from bot.visible import visible, visible_json

if TYPE_CHECKING:
    from bot.audit.reader import Source
    from bot.settings import Settings


@contextlib.contextmanager
def audit_source(settings: Settings) -> Iterator[Source]:
    """A read-only source of the configured store (the in-memory store: an empty app)."""
    from bot.audit.reader import AppSource, open_reader

    url = settings.resolved_database_url()
    if url.strip() in ("memory:", "memory://"):
        from bot.cli.bootstrap import open_app

        app = open_app(settings)
        try:
            yield AppSource(
                recorder=app.recorder,
                mapper=app.mapper,  # type: ignore[arg-type]
                readmodel=app.readmodel,
                snapshot_recorder=app.snapshots.recorder if app.snapshots else None,
            )
        finally:
            app.close()
        return
    reader = open_reader(url, cipher_key=settings.cipher_key, audit_key=settings.audit_key_bytes())
    try:
        yield reader
    finally:
        reader.close()


def verify(
    conversation: Annotated[str | None, typer.Argument(help="Conversation id or prefix.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Verify every conversation.")] = False,
    against: Annotated[
        list[Path] | None,
        typer.Option("--against", help="A checkpoint taken before (repeatable)."),
    ] = None,
    public_key: Annotated[
        str | None,
        typer.Option(help="Also check the checkpoints' Ed25519 signature with this key."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check seals, hash chains, versions, the listing and checkpoints; exit 0 when intact,
    1 naming each bad event (or listing row, or checkpoint)."""
    from bot.audit.checkpoint import load
    from bot.audit.verify import verify_log
    from bot.settings import read_settings

    if bool(conversation) == all_:
        raise OpsloopError("give a conversation id or --all (not both)")
    checkpoints = [(str(p), load(p)) for p in against or []]
    with audit_source(read_settings()) as source:
        report = verify_log(
            source,
            conversation if conversation else None,
            checkpoints=checkpoints,
            public_key=public_key,
        )
    if as_json:
        print(visible_json(json.dumps(report.as_json(), ensure_ascii=False)))
    else:
        for problem in report.problems:
            print(visible(f"TAMPERED {problem}").replace("\n", "\u240a"))
    if not report.intact:
        raise typer.Exit(1)
    if not as_json:
        against_text = f", against {len(checkpoints)} checkpoint(s)" if checkpoints else ""
        print(
            f"intact: {report.conversations} conversation(s), {report.events} event(s)"
            f"{against_text}"
        )


def checkpoint(
    out: Annotated[
        Path | None, typer.Option("--out", help="Write it to this file (default: stdout).")
    ] = None,
) -> None:
    """Write a signed checkpoint of the whole log (to --out, to ``[audit] publish``, or to
    stdout when neither is given); keep it outside the database."""
    from bot.config import load_policy
    from bot.settings import read_settings

    settings = read_settings()
    publish = load_policy(settings.config).audit.publish
    text = checkpoint_text(take_checkpoint(settings))
    if out is not None:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write the checkpoint to {out}: {exc.strerror}") from None
    publish_to(publish, text)
    if out is None and not publish:
        sys.stdout.write(text)


def checkpoint_text(body: dict[str, Any]) -> str:
    """A checkpoint as the file it is kept in."""
    return json.dumps(body, indent=1, sort_keys=True) + "\n"


def take_checkpoint(settings: Settings, *, now: datetime | None = None) -> dict[str, Any]:
    """The signed checkpoint of the configured store, read read-only."""
    from bot.audit.checkpoint import make, signing_key_of
    from bot.audit.scan import scan
    from bot.audit.snapshots_audit import heads, read_snapshots

    key = settings.audit_key_bytes()
    if not key:
        raise ConfigError(
            "a checkpoint is signed with the audit key: set OPSLOOP_AUDIT_KEY or "
            "OPSLOOP_AUDIT_KEY_FILE"
        )
    signing = signing_key_of(settings.audit_signing_key)
    with audit_source(settings) as source:
        sc = scan(source)
        snaps = heads(read_snapshots(source, sc.by_conversation()))
        when = now or datetime.now(UTC)
        return make(sc, key=key, now=when, snapshots=snaps, signing_key=signing)


def publish_to(command: list[str], text: str) -> None:
    """Hand a checkpoint to ``[audit] publish`` on its stdin (nothing when not configured)."""
    if not command:
        return
    try:
        done = subprocess.run(  # noqa: S603 -- the operator's own configured command
            command, input=text, text=True, capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot run [audit] publish {command[0]!r}: {exc}") from None
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or [""])[-1]
        raise ConfigError(
            f"[audit] publish {command[0]!r} failed (exit {done.returncode}): {visible(said)}"
        )


def register(audit_app: typer.Typer) -> None:
    """Add the audit commands to ``opsloop audit``."""
    audit_app.command("verify")(verify)
    audit_app.command("checkpoint")(checkpoint)
