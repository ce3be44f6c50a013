"""``opsloop doctor``: is each real part usable, and if not, what fixes it.

Independent checks, so one broken part does not hide the rest: the sandbox
(``sandbox.check.diagnose``), the event store (open it and read from it), the configured
model (a heartbeat, with its name and latency), and each configured tool. Every problem
carries the action that fixes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.errors import one_line
from bot.visible import visible

if TYPE_CHECKING:
    from bot.config import Policy
    from bot.settings import Settings


@dataclass(frozen=True)
class Check:
    """The outcome of one check; ``fix`` says what to do when it failed."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


SANDBOX_FIX = (
    "run `opsloop sandbox check` for details and see the Sandbox section of README.md "
    "(nsjail needs unprivileged user namespaces, or root in a container allowed to create them)"
)


async def check_sandbox(*, settings: Settings, policy: Policy) -> Check:
    """Can the configured sandbox run code here? (a real probe block runs)"""
    if settings.sandbox_url:
        return await _check_sandbox_service(settings=settings, policy=policy)
    try:
        from bot.cli.sandboxing import layout_options_from
        from sandbox.check import diagnose

        report = await diagnose(
            nsjail=settings.nsjail,
            options=layout_options_from(policy.sandbox),
            unsafe_local=settings.sandbox == "unsafe-local",
            workspace_fs=policy.sandbox.workspace_fs,
            uid_range=policy.sandbox.uid_range,
        )
    except Exception as exc:
        return Check("sandbox", False, one_line(exc), SANDBOX_FIX)
    problems = "; ".join(report.problems)
    unsafe = settings.sandbox == "unsafe-local"
    blocked = None if unsafe else _unreachable_workspaces(settings=settings, policy=policy)
    if report.jails_work and blocked:
        return Check(
            "sandbox",
            False,
            blocked,
            "set OPSLOOP_DATA_DIR (or [sandbox] workspace_root "
            "in opsloop.toml) to a directory such as /var/lib/opsloop, or chmod o+x "
            "the directory named",
        )
    if report.jails_work:
        detail = " ".join(f"nsjail {report.nsjail_version or ''} runs blocks".split())
        detail += f" ({report.enforcement})"
        if unsafe:
            return Check(
                "sandbox",
                True,
                detail + "; but OPSLOOP_SANDBOX=unsafe-local runs blocks WITHOUT isolation",
                "unset OPSLOOP_SANDBOX to use nsjail",
            )
        if problems:
            return Check(
                "sandbox",
                True,
                f"{detail}; warning: {problems}",
                "let opsloop's user create cgroups (see `opsloop sandbox check`)",
            )
        return Check("sandbox", True, detail)
    if unsafe:
        return Check(
            "sandbox",
            True,
            f"nsjail cannot run here ({problems}); "
            "OPSLOOP_SANDBOX=unsafe-local runs blocks WITHOUT isolation",
            SANDBOX_FIX,
        )
    return Check("sandbox", False, problems or "nsjail could not run a probe block", SANDBOX_FIX)


def _unreachable_workspaces(*, settings: Settings, policy: Policy) -> str | None:
    """Why the jail user could not reach the workspaces (the probe block uses a scratch one)."""
    from bot.cli.sandboxing import workspace_root
    from sandbox.layout import unreachable_part

    root = workspace_root(settings=settings, policy=policy.sandbox)
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    blocked = unreachable_part(existing / "workspace")
    if blocked is None:
        return None
    return f"workspaces in {root} are not reachable by the jail user: {blocked} is not searchable"


async def _check_sandbox_service(*, settings: Settings, policy: Policy) -> Check:
    try:
        from bot.cli.sandboxing import make_sandbox

        sandbox = make_sandbox(settings=settings, policy=policy)
        result = await sandbox.run(language="python", code="print('ok')")
        if result.stdout.strip() != "ok":
            raise RuntimeError(
                f"a probe block printed {result.stdout[:80]!r} {result.stderr[:200]}"
            )
    except Exception as exc:
        return Check(
            "sandbox",
            False,
            f"the sandbox service at {settings.sandbox_url} does not run code: {one_line(exc)}",
            "start it with `opsloop serve sandbox` or fix "
            "OPSLOOP_SANDBOX_URL / OPSLOOP_SANDBOX_TOKEN",
        )
    return Check("sandbox", True, f"the sandbox service at {settings.sandbox_url} runs blocks")


def check_store(*, open_app: Callable[[], Any], url: str) -> Check:
    """Can the event store be opened and read?"""
    try:
        app = open_app()
        try:
            count = len(app.list_conversations())
            version = app.schema_version
        finally:
            close = getattr(app, "close", None)
            if close:
                close()
    except Exception as exc:
        fix = (
            "start PostgreSQL or correct OPSLOOP_DATABASE_URL"
            if url.startswith("postgres")
            else "check OPSLOOP_DATABASE_URL (sqlite:///path) and that its directory is writable"
        )
        if "cipher" in one_line(exc).lower() or "decrypt" in one_line(exc).lower():
            fix = "set OPSLOOP_CIPHER_KEY to the key the events were written with"
        return Check("event store", False, one_line(exc), fix)
    plural = "s" if count != 1 else ""
    return Check("event store", True, f"{url}: {count} conversation{plural}, schema v{version}")


def _model_fix(provider: str) -> str:
    return {
        "ollama": "start Ollama (`ollama serve`), pull the model (`ollama pull MODEL`), or set "
        "OLLAMA_HOST; or pick another provider with OPSLOOP_PROVIDER",
        "openai": "set OPENAI_BASE_URL to your OpenAI-compatible server and OPENAI_API_KEY",
        "groq": "set GROQ_API_KEY (https://console.groq.com/keys) and OPSLOOP_MODEL",
        "scripted": "set OPSLOOP_MODEL to a readable TOML or YAML script of turns",
    }.get(provider, "set OPSLOOP_PROVIDER to ollama, openai, groq or scripted")


async def check_model(
    *, make_model: Callable[[], Any], provider: str, timeout: float = 30.0
) -> Check:
    """Send the configured model a heartbeat; report its name and latency."""
    try:
        model = make_model()
    except Exception as exc:
        return Check("model", False, one_line(exc), _model_fix(provider))
    name = getattr(model, "name", provider)
    try:
        started = time.perf_counter()
        ping: Callable[[], Awaitable[float]] | None = getattr(model, "ping", None)
        if ping is not None:
            latency = await asyncio.wait_for(ping(), timeout)
            latency = latency or (time.perf_counter() - started) * 1000
        else:
            from bot.ports import ChatMessage

            await asyncio.wait_for(model.reply([ChatMessage("user", "Reply with: ok")]), timeout)
            latency = (time.perf_counter() - started) * 1000
    except Exception as exc:
        return Check("model", False, f"{name}: {one_line(exc)}", _model_fix(provider))
    finally:
        close = getattr(model, "aclose", None)
        if close is not None:
            # closing a client that failed must not hide the verdict
            with contextlib.suppress(Exception):
                await close()
    return Check("model", True, f"{name} answered the heartbeat in {latency:.0f} ms")


async def check_bounds(
    *, make_model: Callable[[], Any], configured_context: int, timeout: float = 120.0
) -> Check | None:
    """Does the model's server honour ``max_tokens`` and stop sequences, and what context
    window does it report? (two tiny completions; None for models that cannot be probed)"""
    try:
        model = make_model()
    except Exception:  # the model check reports why it cannot be built
        return None
    first = getattr(model, "models", (model,))[0]  # a fallback chain: its first model
    probe: Callable[[], Awaitable[Any]] | None = getattr(first, "probe", None)
    try:
        if probe is None:
            return None
        from bot.providers.probe import describe_bounds

        bounds = await asyncio.wait_for(probe(), timeout)
    except Exception as exc:  # the heartbeat answered: a server refusing a probe is no failure
        return Check("model bounds", True, f"the server would not say: {one_line(exc)}")
    finally:
        close = getattr(model, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
    detail = describe_bounds(bounds, configured_context=configured_context)
    fix = (
        ""
        if bounds.max_tokens is not False
        else (
            "this server ignores max_tokens: opsloop still cuts each turn at [models] "
            "turn_seconds and at a repetition, but set a smaller turn_seconds for it"
        )
    )
    return Check("model bounds", bounds.max_tokens is not False, detail, fix)


async def check_tools(*, policy: Policy) -> list[Check]:
    """Each configured tool: MCP servers answer, HTTP hosts resolve, commands exist."""
    from bot.cli.bootstrap import tool_registry

    try:
        registry = tool_registry(policy)
    except Exception as exc:  # a bad [tools] table or a missing ${env:VAR}
        return [Check("tools", False, one_line(exc), "fix [tools] in opsloop.toml")]
    if registry is None:
        return []
    try:
        found = await registry.check()
    finally:
        await registry.aclose()
    return [
        Check(f"tool {c.name}", c.ok, f"{c.kind}: {c.detail}", "" if c.ok else TOOL_FIX[c.kind])
        for c in found
    ]


TOOL_FIX = {
    "command": "install the command, or fix argv in its [tools] table",
    "http": "check the url in its [tools] table and that this host can resolve and reach it",
    "mcp": "check command or url in its [tools] table; `opsloop tools list` shows the error",
}


def render(checks: list[Check]) -> str:
    """Lines for the terminal: a mark, the part, what was found, and the fix.

    A detail can quote a remote server (a model's error page, a sandbox service's answer),
    so each line passes through ``visible`` and a detail's own newlines show as ``␊``.
    """
    lines = []
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        lines.append(visible(f"{mark} {check.name}: {check.detail}").replace("\n", "\u240a"))
        if check.fix:
            lines.append(visible(f"     fix: {check.fix}"))
    broken = [c.name for c in checks if not c.ok]
    lines.append("all good" if not broken else f"broken: {', '.join(broken)}")
    return "\n".join(lines)
