"""The composition root: settings and policy in, a ready ``ChatService`` out.

Only this module (and ``bot/cli*.py``) picks concrete parts: the event store from
``OPSLOOP_DATABASE_URL``, the model from ``OPSLOOP_PROVIDER``/``OPSLOOP_MODEL`` (or
``--provider``/``--model``), the sandbox from ``OPSLOOP_SANDBOX``/``OPSLOOP_SANDBOX_URL``, and
the limits and prompt sizes from ``opsloop.toml``. The Slack and Discord serve commands call
``build_chat_service`` too, then resume interrupted loops via ``interrupted()``/``run``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from bot.config import Policy, load_policy
from bot.loop.files import FileCaps
from bot.loop.ownership import LeasePolicy, replica_id
from bot.loop.runner import LoopRunner
from bot.loop.service import OpsloopService
from bot.policy.approvals import ApprovalPolicy
from bot.policy.mounts import mounts_for
from bot.ports import ChatModel, Sandbox
from bot.prompt.builder import prompt_builder
from bot.secrets import known_secrets
from bot.settings import Settings, read_settings
from bot.visible import redact_logs
from domain.redaction import Redactor

if TYPE_CHECKING:
    from bot.app.application import ConversationApp
    from bot.tools.registry import ToolRegistry
    from domain.budgets import DailyBudgets
    from domain.limits import LoopLimits
    from sandbox.limits import Limits


def load_settings() -> tuple[Settings, Policy]:
    """The environment's settings and ``opsloop.toml``'s policy, errors as one sentence."""
    settings = read_settings()
    return settings, load_policy(settings.config)


def open_app(
    settings: Settings, *, redactor: Redactor | None = None, create: bool = False
) -> ConversationApp:
    """The conversation application on the configured event store (redacting what it
    stores with ``redactor``: the loop's; credential shapes only for reading commands). A
    SQLite file's missing directory is created with ``create`` (``--create``), and always
    for the default store."""
    from bot.app.application import open_app as open_store

    return open_store(
        database_url=settings.resolved_database_url(),
        cipher_key=settings.cipher_key,
        pool=settings.pool_sizes(),
        redactor=redactor,
        audit_key=settings.audit_key_bytes(),
        create=create or settings.database_url is None,
    )


def lease_policy(settings: Settings) -> LeasePolicy:
    """How this process holds conversations' loops among replicas (docs/replicas.md)."""
    return LeasePolicy(holder=replica_id(settings.replica_id), seconds=settings.lease_seconds)


def loop_limits(policy: Policy) -> LoopLimits:
    """``[loop]`` of opsloop.toml as domain values."""
    from domain.limits import LoopLimits

    return LoopLimits(**policy.loop.model_dump(), block_wall_seconds=policy.sandbox.wall_seconds)


def daily_budgets(policy: Policy) -> DailyBudgets:
    """``[budgets]`` of opsloop.toml as domain values."""
    from domain.budgets import DailyBudgets

    b = policy.budgets
    return DailyBudgets(
        per_user_cost=b.per_user_daily_cost,
        per_user_tokens=b.per_user_daily_tokens,
        per_channel_cost=b.per_channel_daily_cost,
    )


def sandbox_limits(policy: Policy) -> Limits:
    """``[sandbox]`` of opsloop.toml as the limits of each block (recorded in BlockStarted)."""
    from bot.cli.sandboxing import limits_from

    return limits_from(policy.sandbox)


def make_sandbox(*, settings: Settings, policy: Policy) -> Sandbox:
    """The configured sandbox (in-process nsjail, unsafe-local, or the sandbox service)."""
    from bot.cli.sandboxing import make_sandbox as build

    return build(settings=settings, policy=policy)


def tool_registry(policy: Policy, *, settings: Settings | None = None) -> ToolRegistry | None:
    """The tools of ``[tools]``, their ``${env:VAR}`` secrets read from this environment; its
    redactor knows every secret of the process (``bot.secrets``)."""
    if not policy.tools.declared:
        return None
    from bot.tools.registry import ToolRegistry

    known = known_secrets(settings=settings, policy=policy, environ=os.environ)
    return ToolRegistry.build(policy, environ=os.environ, known=known)


def redactor_for(*, settings: Settings, policy: Policy, tools: ToolRegistry | None) -> Redactor:
    """The one redactor of this process: the tools' (which knows every secret), or one of
    opsloop's own secrets and ``[redact] env`` when no tools are configured."""
    if tools is not None:
        return tools.redactor
    return Redactor(known_secrets(settings=settings, policy=policy, environ=os.environ))


def build_service(
    *,
    settings: Settings,
    policy: Policy,
    model: ChatModel,
    sandbox: Sandbox,
    app: Any | None = None,
    workspace_for: Callable[[Any], str] = str,
    create: bool = False,
) -> OpsloopService:
    """A service from explicit parts (tests, the demo and the benchmark pass their own; an
    app passed in keeps its own redactor for what it stores)."""
    tools = tool_registry(policy, settings=settings)
    redactor = redactor_for(settings=settings, policy=policy, tools=tools)
    redact_logs(redactor)  # the process's own log lines too
    app = app if app is not None else open_app(settings, redactor=redactor, create=create)
    runner = LoopRunner(
        app=app,
        model=model,
        sandbox=sandbox,
        limits=loop_limits(policy),
        build_prompt=prompt_builder(policy=policy, model_name=model.name, redactor=redactor),
        sandbox_limits=sandbox_limits(policy),
        workspace_for=workspace_for,
        tools=tools,
        approvals=ApprovalPolicy.from_policy(policy),
        budgets=daily_budgets(policy),
        mounts_for=lambda caller: mounts_for(policy.sandbox, caller=caller),
        lease=lease_policy(settings),
        file_caps=FileCaps.from_policy(policy.files),
        redactor=redactor,
        turn_seconds=_turn_seconds(policy, model.name),
    )
    access = {"slack": policy.slack, "discord": policy.discord}
    return OpsloopService(app=app, runner=runner, model_name=model.name, access=access)


def _turn_seconds(policy: Policy, model_name: str) -> float:
    provider, _, model = model_name.partition(":")
    return policy.models.turn_seconds_for(provider=provider, model=model)


@contextlib.asynccontextmanager
async def chat_service(
    *, provider: str | None = None, model: str | None = None, create: bool = False
) -> AsyncIterator[tuple[OpsloopService, Settings]]:
    """The service of a terminal command, from this process's settings and policy, closed
    (model clients, store) when the command is done."""
    settings, policy = load_settings()
    service = build_chat_service(
        settings=settings, policy=policy, provider=provider, model=model, create=create
    )
    try:
        yield service, settings
    finally:
        await service.aclose()


def build_chat_service(
    *,
    settings: Settings,
    policy: Policy,
    provider: str | None = None,
    model: str | None = None,
    create: bool = False,
) -> OpsloopService:
    """The ``ChatService`` every surface uses, wired from settings and policy (failing at
    once when no model is configured and the default has no server: ``bot.cli.firstrun``)."""
    from bot.cli.firstrun import check_default_model
    from bot.providers import make_model

    check_default_model(settings, provider=provider, model=model)

    chat_model = make_model(settings=settings, policy=policy, provider=provider, model=model)
    sandbox = make_sandbox(settings=settings, policy=policy)
    return build_service(
        settings=settings, policy=policy, model=chat_model, sandbox=sandbox, create=create
    )
