"""``opsloop audit verify | checkpoint | export``: proving the log untampered.

Every audit command is read-only: it opens its own SELECT-only connection
(``bot.audit.reader``), creates no table and catches nothing up, so an auditor with a
SELECT-only role, or a copy of the store on a full disk, can run it. The audit key comes
from ``OPSLOOP_AUDIT_KEY`` or ``OPSLOOP_AUDIT_KEY_FILE``; the cipher key, when the store is
encrypted, from ``OPSLOOP_CIPHER_KEY``. What the store holds is printed through
``bot.visible``. Exit status: 0 intact, 1 tampered, 2 a key or usage problem (one line).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.source import audit_source
from bot.errors import ConfigError, OpsloopError
from bot.visible import visible, visible_json

if TYPE_CHECKING:
    from bot.audit.reader import Source
    from bot.settings import Settings


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

    if conversation and all_:
        raise OpsloopError("give a conversation id or --all, not both")
    if not conversation and not all_:
        raise OpsloopError("give a conversation id (or a prefix of one), or --all for every one")
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


def export(
    since: Annotated[
        str | None, typer.Option(help="Events at or after: ISO time or age (7d).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl | otel")] = "jsonl",
    endpoint: Annotated[
        str | None,
        typer.Option(help="OTLP/HTTP traces URL (default: the OTEL_EXPORTER_OTLP_* variables)."),
    ] = None,
    content: Annotated[
        bool, typer.Option("--content", help="Put message and output text into spans.")
    ] = False,
) -> None:
    """Export the log: JSONL with the chain fields (for a SIEM), or OpenTelemetry GenAI spans
    to a collector."""
    from bot.audit.export import jsonl
    from bot.audit.scan import scan
    from bot.cli.log import _write, parse_when
    from bot.settings import read_settings

    if fmt not in ("jsonl", "otel"):
        raise ConfigError(f"unknown format {fmt!r}: use jsonl or otel")
    since_at = parse_when(since)
    with audit_source(read_settings()) as source:
        sc = scan(source)
        if fmt == "jsonl":
            _write(jsonl(sc, since=since_at, key_for=source.mapper.user_key))
            return
        runs, spans = export_otel(source, sc, since_at, endpoint=endpoint, content=content)
    print(f"exported {spans} span(s) of {runs} loop run(s)")


def export_otel(
    source: Source, sc: Any, since: datetime | None, *, endpoint: str | None, content: bool
) -> tuple[int, int]:
    """Build the spans in memory, then send them in one OTLP/HTTP request (or say why not)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from bot.audit.otel import export_spans, provider_for
    from bot.audit.replay import timeline_of

    memory = InMemorySpanExporter()
    provider = provider_for(memory)
    runs = 0
    for items in sc.by_conversation().values():
        kept = [i for i in items if since is None or i.state and i.state["timestamp"] >= since]
        runs += export_spans(
            provider, timeline_of(source.mapper.to_state(i.stored) for i in kept), content=content
        )
    provider.shutdown()
    spans = memory.get_finished_spans()
    otlp = OTLPSpanExporter(endpoint=endpoint, timeout=10) if endpoint else OTLPSpanExporter()
    try:
        result = otlp.export(spans) if spans else SpanExportResult.SUCCESS
    finally:
        otlp.shutdown()
    if result is not SpanExportResult.SUCCESS:
        raise ConfigError(f"the OTLP collector at {endpoint or '(default)'} did not take the spans")
    return runs, len(spans)


def erase(
    user: Annotated[str, typer.Option("--user", help="The person, as platform:id.")],
) -> None:
    """Erase a person's text (destroy their key): it reads [erased]; the proof still holds."""
    from bot.app.erase import erase_user
    from bot.cli.bootstrap import open_app
    from bot.settings import read_settings

    app = open_app(read_settings())
    try:
        had_key, found = erase_user(app, user)
    finally:
        app.close()
    key = "their key destroyed" if had_key else "no key of theirs was stored"
    print(visible(f"erased {user}: {key}; UserErased recorded in {len(found)} conversation(s)"))


def register(app: typer.Typer) -> None:
    """Add ``opsloop audit`` and its commands."""
    audit_app = typer.Typer(help="Audit the event log.", no_args_is_help=True)
    app.add_typer(audit_app, name="audit")
    audit_app.command("verify")(verify)
    audit_app.command("checkpoint")(checkpoint)
    audit_app.command("export")(export)
    audit_app.command("erase")(erase)
