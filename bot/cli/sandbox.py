"""``opsloop sandbox run|check`` and ``opsloop serve sandbox``."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from bot.cli.options import LogFormatOpt, environment_epilog
from bot.visible import visible

if TYPE_CHECKING:
    from bot.config import Policy
    from bot.settings import Settings
    from sandbox.check import Diagnosis
    from sandbox.result import RunResult

run_help = "Run one helper block (FILE, or - for stdin) in the sandbox."
# What ``opsloop serve sandbox`` reads (OPSLOOP_SANDBOX_URL is ignored: it serves locally).
SANDBOX_SERVICE_FIELDS = ("sandbox_token", "sandbox", "nsjail", "data_dir", "config")


def _exit_status(result: RunResult) -> int:
    """The block's exit status, or 128 + signal like a shell."""
    if result.exit_code is not None:
        return result.exit_code
    return 128 + (result.signal or 9)


def for_stream(stream: TextIO, text: str) -> str:
    """A block's output as ``run`` writes it: raw into a pipe or file, visible on a terminal."""
    return visible(text) if stream.isatty() else text


def register(app: typer.Typer, serve_app: typer.Typer) -> None:
    """Add this group's commands to ``app`` and ``serve_app``."""
    sandbox_app = typer.Typer(help="Run code in the nsjail sandbox.", no_args_is_help=True)
    app.add_typer(sandbox_app, name="sandbox")
    sandbox_app.command("run", help=run_help)(run)
    sandbox_app.command("check", help="Can jails run here, and which limits are enforced?")(check)
    serve_app.command(
        "sandbox",
        help="Serve the sandbox over HTTP (POST /v1/run; GET /v1/run/ws with tools).",
        epilog=environment_epilog(only=SANDBOX_SERVICE_FIELDS),
    )(serve_sandbox)


def run(
    file: Annotated[str, typer.Argument(help="A file of code, or - to read stdin.")],
    lang: Annotated[str, typer.Option("--lang", help="python or bash.")] = "python",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result object.")] = False,
    timeout: Annotated[float | None, typer.Option(help="Wall limit in seconds.")] = None,
    memory: Annotated[int | None, typer.Option(help="Memory limit in MiB.")] = None,
    workspace: Annotated[
        str | None, typer.Option(help="Keep files in this named workspace.")
    ] = None,
    mount: Annotated[
        list[str] | None,
        typer.Option("--mount", help="A [sandbox] mounts NAME, read-only at /mnt/NAME (repeat)."),
    ] = None,
) -> None:
    """``opsloop sandbox run``: one block, its output, and its exit status as ours."""
    from bot.cli.bootstrap import load_settings
    from bot.cli.sandboxing import limits_from, make_sandbox

    settings, policy = load_settings()
    code = _read_code(file)
    changes: dict[str, float] = {}
    if timeout is not None:
        changes["wall_seconds"] = timeout
    if memory is not None:
        changes["memory_mb"] = memory
    limits = limits_from(policy.sandbox)
    limits = limits.replaced(**changes) if changes else limits
    # One block and out: a warm kernel would die with this process, so none is started.
    one_shot = policy.sandbox.model_copy(update={"warm_kernels": False})
    sandbox = make_sandbox(
        settings=settings, policy=policy.model_copy(update={"sandbox": one_shot})
    )

    async def go() -> RunResult:
        try:
            return await sandbox.run(
                language=lang, code=code, limits=limits, workspace=workspace, mounts=mount or ()
            )
        finally:
            close = getattr(sandbox, "aclose", None)
            if close is not None:
                await close()

    result = asyncio.run(go())
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        _print_result(result)
    raise typer.Exit(_exit_status(result))


def _read_code(file: str) -> str:
    """The block's code from ``file``, or stdin for ``-`` (undecodable bytes kept as such)."""
    from sandbox.errors import BadRequest

    if file == "-":
        return sys.stdin.read()
    try:
        return Path(file).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise BadRequest(f"cannot read {file}: {exc.strerror}") from None


def _print_result(result: RunResult) -> None:
    """The block's own output, then one line for each limit it hit."""
    sys.stdout.write(for_stream(sys.stdout, result.stdout))
    sys.stderr.write(for_stream(sys.stderr, result.stderr))
    for flag, text in (
        ("timed_out", "the block hit its time limit"),
        ("memory_exceeded", "the block hit its memory limit"),
        ("output_truncated", "output was truncated"),
        ("unsafe_local", "ran WITHOUT isolation (OPSLOOP_SANDBOX=unsafe-local)"),
    ):
        if getattr(result, flag):
            print(f"opsloop: {text}", file=sys.stderr)


def check(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """``opsloop sandbox check``: what this host enforces; exit 1 when jails cannot run."""
    from bot.cli.bootstrap import load_settings
    from bot.cli.sandboxing import layout_options_from, workspace_root
    from sandbox.check import diagnose_sync

    settings, policy = load_settings()
    found = diagnose_sync(
        nsjail=settings.nsjail,
        options=layout_options_from(policy.sandbox),
        workspace_root=workspace_root(settings=settings, policy=policy.sandbox),
        unsafe_local=settings.sandbox == "unsafe-local",
        workspace_fs=policy.sandbox.workspace_fs,
        uid_range=policy.sandbox.uid_range,
    )
    if as_json:
        print(json.dumps(found.to_dict(), indent=2))
    else:
        _print_diagnosis(found)
    raise typer.Exit(0 if found.jails_work else 1)


def _print_diagnosis(found: Diagnosis) -> None:
    print(f"jails work here:   {'yes' if found.jails_work else 'NO'}")
    print(
        f"nsjail:            {found.nsjail_path or 'missing'}"
        f" (version {found.nsjail_version or 'unknown'})"
    )
    print(f"limits enforced:   {found.enforcement}")
    print(f"  memory:          {found.memory_cap}")
    print(f"  tasks:           {found.task_cap}")
    print(f"blocks run as:     host uid {found.jail_uid} (without a workspace)")
    print(f"workspaces:        {found.workspace_fs}")
    print(f"  owners:          {found.workspace_uids}")
    for language, path in found.interpreters.items():
        print(f"{language + ':':<19}{path}")
    for target, source in found.mounts.items():
        print(f"mount:             {target} <- {source} (read-only)")
    if found.unsafe_local:
        print("WARNING: OPSLOOP_SANDBOX=unsafe-local: blocks run WITHOUT isolation")
    for problem in found.problems:
        print(f"problem: {problem}")


def serve_sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8700,
    socket: Annotated[
        Path | None,
        typer.Option(help="Listen on this unix socket (mode 0600; no token needed) instead."),
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Blocks running at once.")] = 4,
    queue: Annotated[int, typer.Option(help="Blocks waiting before 429.")] = 16,
    head_timeout: Annotated[
        float, typer.Option(help="Seconds a new connection has to send a request head.")
    ] = 10.0,
    body_timeout: Annotated[float, typer.Option(help="Seconds to send a body.")] = 30.0,
    idle_timeout: Annotated[
        float,
        typer.Option(help="Seconds an authenticated connection may idle (over 5: the client's)."),
    ] = 30.0,
    max_connections: Annotated[
        int, typer.Option(help="Open connections; beyond, the oldest idle are closed.")
    ] = 1024,
    log_format: LogFormatOpt = None,
) -> None:
    """``opsloop serve sandbox``: the in-process sandbox behind HTTP, for other hosts."""
    import logging

    from bot.cli import logsetup
    from bot.cli.bootstrap import load_settings
    from bot.cli.sandboxing import limits_from, make_sandbox
    from sandbox.service import ServiceOptions, check_bind, serve

    logsetup.configure(log_format, level=logging.INFO)
    settings, policy = load_settings()
    if socket is None:
        check_bind(host=host, token=settings.sandbox_token)
    if settings.sandbox_url:
        # A service forwarding to another service would loop; serve the local sandbox.
        settings = settings.model_copy(update={"sandbox_url": None})
    runner = make_sandbox(settings=settings, policy=policy)
    _warn_if_unreachable(settings=settings, policy=policy)
    options = ServiceOptions(
        token=settings.sandbox_token,
        concurrency=concurrency,
        queue=queue,
        maxima=limits_from(policy.sandbox),  # [sandbox]: every request's defaults and maxima
        head_seconds=head_timeout,
        body_seconds=body_timeout,
        idle_seconds=idle_timeout,
        max_connections=max_connections,
    )
    serve(runner=runner, host=host, port=port, socket_path=socket, options=options)


def _warn_if_unreachable(*, settings: Settings, policy: Policy) -> None:
    import logging

    from bot.cli.sandboxing import workspace_root
    from sandbox.layout import unreachable_part

    root = workspace_root(settings=settings, policy=policy.sandbox)
    blocked = unreachable_part(root / "x")
    if blocked and settings.sandbox != "unsafe-local":
        logging.getLogger("opsloop.sandbox").warning(
            "workspaces in %s are not reachable by the jail user (%s is not searchable by "
            "others): requests with a workspace will fail; set OPSLOOP_DATA_DIR or "
            "[sandbox] workspace_root",
            root,
            blocked,
        )
