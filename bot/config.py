"""Policy from ``opsloop.toml``: who may use the bot, limits, budgets, prices.

Nothing here is secret (secrets are environment variables, see ``bot.settings``).
Every section is optional; an unknown key is an error, so a typo is caught at start-up
instead of silently ignored. ``deploy/opsloop.example.toml`` shows every key.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bot.errors import ConfigError
from bot.policy.roles import unknown_roles
from bot.tools.config import ToolsPolicy

_MOUNT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # as sandbox.mounts checks it


class _Section(BaseModel):
    # strict: TOML has real types, so `turns_per_message = true` is a mistake, not a 1
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class LoopPolicy(_Section):
    """Limits of the loop (see ``domain.limits``)."""

    turns_per_message: int = Field(default=10, ge=1, le=100)
    token_budget: int | None = Field(default=None, ge=1)  # per conversation, in+out tokens
    cost_budget: float | None = Field(default=None, gt=0)  # per conversation, USD


class BudgetsPolicy(_Section):
    """Daily model spend per person and per channel, in UTC days (see ``domain.budgets``).

    Counted from the event log across every conversation, channel and replica; unset means
    unlimited. Over one, the loop stops before the next model call (``Stopped(budget)``).
    """

    per_user_daily_cost: float | None = Field(default=None, gt=0, allow_inf_nan=False)  # USD
    per_user_daily_tokens: int | None = Field(default=None, ge=1)  # input+output tokens
    per_channel_daily_cost: float | None = Field(default=None, gt=0, allow_inf_nan=False)  # USD


class MountDecl(_Section):
    """One ``[sandbox.mounts.NAME]``: a host directory offered read-only at /mnt/NAME."""

    path: str  # absolute; the sandbox resolves it, checks it and mounts it read-only
    allow_users: list[str] = Field(default_factory=list)  # "U012" or "slack:U012"
    allow_channels: list[str] = Field(default_factory=list)
    allow_roles: list[str] = Field(default_factory=list)  # issue 12: [roles]

    @field_validator("path")
    @classmethod
    def _plain_absolute(cls, path: str) -> str:
        if not path.startswith("/") or ".." in path.split("/"):
            raise PydanticCustomError("mounts", "must be an absolute path without '..'")
        return path


class SandboxPolicy(_Section):
    """Limits and wiring of the sandbox (see ``sandbox.limits.Limits``)."""

    wall_seconds: float = Field(default=10.0, gt=0, le=3600)
    cpu_seconds: float | None = Field(default=None, gt=0, le=3600)
    memory_mb: int = Field(default=256, ge=16, le=65536)
    tasks: int = Field(default=64, ge=1, le=4096)
    file_size_mb: int = Field(default=16, ge=1, le=4096)
    open_files: int = Field(default=256, ge=16, le=65536)
    tmpfs_mb: int = Field(default=64, ge=1, le=4096)
    output_bytes: int = Field(default=1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    python: str = "python3"
    bash: str = "bash"
    python_args: list[str] = Field(default_factory=lambda: ["-I", "-S"])  # -S: stdlib only
    nice: int = Field(default=0, ge=0, le=19)  # niceness of blocks
    extra_mounts: list[str] = Field(default_factory=list)  # read-only host paths, e.g. a venv
    env: dict[str, str] = Field(default_factory=dict)  # extra environment inside the jail
    workspace_quota_mb: int = Field(default=256, ge=1)
    workspace_files: int = Field(default=10_000, ge=16, le=10_000_000)  # files, dirs, links
    workspace_root: str | None = None  # default: <data dir>/workspaces; must be o+x for nobody
    workspace_idle_hours: float = Field(default=72.0, gt=0)
    workspace_fs: Literal["auto", "image", "directory"] = "auto"  # see docs/sandbox.md
    uid_range: str = "200000-265535"  # host uids of workspaces (as root); first is scratch
    # name -> host path, or the long form with allow_* lists; read-only at /mnt/NAME
    mounts: dict[str, MountDecl] = Field(default_factory=dict)
    # Warm kernels (docs/sandbox.md): a conversation's Python blocks share one interpreter.
    warm_kernels: bool = True  # false: one process per block, as before
    kernel_idle_seconds: float = Field(default=600.0, gt=0, le=3600)  # then it is stopped
    max_kernels: int = Field(default=32, ge=1, le=4096)  # warm at once; least recently used go
    prestarted: int = Field(default=2, ge=0, le=64)  # jails started ahead for new conversations
    # A kernel is retired at this age; at most an hour, below the two hours after which an
    # idle workspace image is unmounted (no jail may still hold it then).
    kernel_max_age_seconds: float = Field(default=3600.0, gt=0, le=3600)

    @field_validator("mounts", mode="before")
    @classmethod
    def _mount_forms(cls, mounts: Any) -> Any:
        if not isinstance(mounts, dict):
            return mounts
        for name in mounts:
            if not isinstance(name, str) or not _MOUNT_NAME.fullmatch(name):
                raise PydanticCustomError(
                    "mounts", "{name} is not a simple identifier", {"name": repr(str(name)[:40])}
                )
        return {n: {"path": d} if isinstance(d, str) else d for n, d in mounts.items()}


class PromptPolicy(_Section):
    """How prompts are built."""

    result_chars: int = Field(default=4000, ge=200)  # head+tail of each stream sent back
    # per model; default 8192. At least 1024: a smaller window cannot hold the system
    # prompt and a question, and the question would be cut to make room.
    context_tokens: dict[str, Annotated[int, Field(ge=1024)]] = Field(default_factory=dict)


class ModelOverride(_Section):
    """``[models.NAME]``: one model's own bounds (NAME is ``provider:model`` or ``model``)."""

    max_output_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    turn_seconds: float | None = Field(default=None, gt=0, le=3600)
    system_role: bool = True  # false: the system prompt opens the first user message


class ModelsPolicy(_Section):
    """Timeouts, retries, streaming and the bounds of a turn (see ``bot.providers``).

    Besides its keys, ``[models]`` holds ``[models.NAME]`` tables (``ModelOverride``), kept
    in ``per_model``.
    """

    max_output_tokens: int = Field(default=2048, ge=1, le=1_000_000)  # sent as the provider's
    turn_seconds: float = Field(default=180.0, gt=0, le=3600)  # wall clock, enforced by the loop
    per_model: dict[str, ModelOverride] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=120.0, gt=0, le=3600)  # per request, per read
    attempts: int = Field(default=4, ge=1, le=20)  # per provider, first try included
    backoff_seconds: float = Field(default=1.0, ge=0, le=600)  # first wait; doubles, jittered
    backoff_max_seconds: float = Field(default=20.0, ge=0, le=3600)
    retry_after_max_seconds: float = Field(default=60.0, ge=0, le=3600)  # longer: fall back
    stream: bool = True  # false only for servers whose streaming is broken

    @model_validator(mode="before")
    @classmethod
    def _tables_are_models(cls, data: Any) -> Any:
        """Every table under ``[models]`` is one model's ``[models.NAME]``."""
        if not isinstance(data, dict):
            return data
        tables = {k: v for k, v in data.items() if isinstance(v, dict) and k != "per_model"}
        if not tables:
            return data
        rest = {k: v for k, v in data.items() if k not in tables}
        return rest | {"per_model": {**rest.get("per_model", {}), **tables}}

    def override_for(self, *, provider: str, model: str) -> ModelOverride:
        """``[models."provider:model"]``, else ``[models."model"]``, else no override."""
        for key in (f"{provider}:{model}", model):
            if key in self.per_model:
                return self.per_model[key]
        return ModelOverride()

    def max_output_tokens_for(self, *, provider: str, model: str) -> int:
        """The output token limit of one model."""
        own = self.override_for(provider=provider, model=model).max_output_tokens
        return own if own is not None else self.max_output_tokens

    def turn_seconds_for(self, *, provider: str, model: str) -> float:
        """The wall-clock cap of one model's turn."""
        own = self.override_for(provider=provider, model=model).turn_seconds
        return own if own is not None else self.turn_seconds


class Price(_Section):
    """USD per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class AccessPolicy(_Section):
    """Who may use the bot on one platform. Empty lists allow everyone."""

    allow_users: list[str] = Field(default_factory=list)
    allow_channels: list[str] = Field(default_factory=list)
    allow_workspaces: list[str] = Field(default_factory=list)  # Slack teams / Discord guilds
    # Discord: servers where a mention of the bot is answered (off everywhere else).
    mention_guilds: list[str] = Field(default_factory=list)


DEFAULT_PROMPTS = [
    "Why is the disk full?",
    "Summarize the log I attach",
    "Which processes use the most memory?",
]


class SlackPolicy(AccessPolicy):
    """``[slack]``: who may use the bot, and Slack's AI app surface."""

    # Shown when someone opens an assistant thread (Slack allows 4).
    suggested_prompts: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PROMPTS), max_length=4
    )

    @field_validator("suggested_prompts")
    @classmethod
    def _short_prompts(cls, prompts: list[str]) -> list[str]:
        if any(not p.strip() or len(p) > 200 for p in prompts):
            raise ValueError("each suggested prompt must be 1 to 200 characters")
        return prompts


class FilesPolicy(_Section):
    """``[files]``: attachments into ``/workspace/inbox`` and files out of ``/workspace/outbox``."""

    max_mb: int = Field(default=20, ge=1, le=1024)  # one file, either way
    max_files: int = Field(default=10, ge=1, le=100)  # per message in, per answer out


class ApprovalOverride(_Section):
    """``[approvals.channels."ID"]``: one channel's (or surface's) own approval rules."""

    blocks: Literal["never", "always", "with_tools"] | None = None  # None: the default's
    approvers: list[str] | None = None


class ApprovalsPolicy(_Section):
    """When a block needs an approver's yes, who may give it, and how long it waits.

    ``approvers`` holds user ids (``"U012AB"``, ``"slack:U012AB"``) and roles (``"oncall"``
    or ``"role:oncall"``); empty means anyone allowed to use the bot in that channel.
    ``channels`` overrides per channel: a key is ``"platform:channel"``, a bare channel id,
    or a surface (``"slack"``, ``"terminal"``); the most specific one wins.
    """

    blocks: Literal["never", "always", "with_tools"] = "never"
    approvers: list[str] = Field(default_factory=list)
    timeout_minutes: float = Field(default=15.0, gt=0, le=7 * 24 * 60)
    channels: dict[str, ApprovalOverride] = Field(default_factory=dict)


class RedactPolicy(_Section):
    """``[redact]``: environment variables whose values are secrets, besides every
    ``${env:VAR}`` a tool uses and opsloop's own tokens (see ``bot.secrets``)."""

    env: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names(self) -> RedactPolicy:
        """Each is a variable name, which becomes the name in ``[redacted:NAME]``."""
        for name in self.env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", name):
                raise _error(f"redact.env: {name!r} is not an environment variable name")
        return self


class AuditPolicy(_Section):
    """``[audit]``: where checkpoints go, and how often serving processes write one."""

    publish: list[str] = Field(default_factory=list)  # a command, fed the checkpoint on stdin
    checkpoint_minutes: float = Field(default=60, ge=0)  # 0: serving processes write none


class Policy(_Section):
    """The whole of ``opsloop.toml``."""

    loop: LoopPolicy = Field(default_factory=LoopPolicy)
    budgets: BudgetsPolicy = Field(default_factory=BudgetsPolicy)
    sandbox: SandboxPolicy = Field(default_factory=SandboxPolicy)
    prompt: PromptPolicy = Field(default_factory=PromptPolicy)
    prices: dict[str, Price] = Field(default_factory=dict)  # "provider:model" or "model"
    models: ModelsPolicy = Field(default_factory=ModelsPolicy)
    slack: SlackPolicy = Field(default_factory=SlackPolicy)
    discord: AccessPolicy = Field(default_factory=AccessPolicy)
    tools: ToolsPolicy = Field(default_factory=ToolsPolicy)  # see bot.tools.config
    roles: dict[str, list[str]] = Field(default_factory=dict)  # role -> ["slack:U012AB", ...]
    approvals: ApprovalsPolicy = Field(default_factory=ApprovalsPolicy)
    files: FilesPolicy = Field(default_factory=FilesPolicy)
    redact: RedactPolicy = Field(default_factory=RedactPolicy)
    audit: AuditPolicy = Field(default_factory=AuditPolicy)

    @model_validator(mode="after")
    def _roles_resolve(self) -> Policy:
        """Role members are qualified ids, and every ``role:NAME`` names a role."""
        for name, members in self.roles.items():
            bare = [m for m in members if ":" not in m.strip(":")]
            if bare:
                raise _error(f"roles.{name}: {bare[0]!r}: write members as platform:id")
        mounts = self.sandbox.mounts
        lists = {
            "approvals.approvers": self.approvals.approvers,
            "slack.allow_users": self.slack.allow_users,
            "discord.allow_users": self.discord.allow_users,
            **{
                f"approvals.channels.{key}.approvers": o.approvers or []
                for key, o in self.approvals.channels.items()
            },
            **{f"tools.{n}.allow_users": d.allow_users for n, d in self.tools.declared.items()},
            **{f"sandbox.mounts.{n}.allow_users": d.allow_users for n, d in mounts.items()},
        }
        for where, entries in lists.items():
            if missing := unknown_roles(entries, self.roles):
                raise _error(f"{where}: {missing[0]!r}: no such role in [roles]")
        role_lists = {f"tools.{n}": d.allow_roles for n, d in self.tools.declared.items()}
        role_lists |= {f"sandbox.mounts.{n}": d.allow_roles for n, d in mounts.items()}
        for where, names in role_lists.items():
            if missing := [r for r in names if r not in self.roles]:
                raise _error(f"{where}.allow_roles: {missing[0]!r}: no such role in [roles]")
        return self


def _error(message: str) -> PydanticCustomError:
    return PydanticCustomError("policy", "{message}", {"message": message})


def load_policy(path: Path | None) -> Policy:
    """Read ``path`` (or ``./opsloop.toml`` when it exists); defaults when there is none."""
    if path is None:
        candidate = Path("opsloop.toml")
        if not candidate.exists():
            return Policy()
        path = candidate
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory, not a TOML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {exc.start} cannot be read); "
            "save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        prefix = f"{where}: " if where else ""  # whole-policy checks name their own keys
        raise ConfigError(f"{path}: {prefix}{first['msg']}") from None
