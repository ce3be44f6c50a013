"""Choosing the sandbox: in-process nsjail, the sandbox service's client, or unsafe-local."""

from __future__ import annotations

import logging
from pathlib import Path

from bot.config import Policy, SandboxPolicy
from bot.errors import ConfigError
from bot.files import private_dir
from bot.ports import Sandbox
from bot.settings import Settings
from sandbox.errors import SandboxError
from sandbox.kernels import KernelOptions
from sandbox.layout import LayoutOptions
from sandbox.limits import Limits
from sandbox.uids import UidRange
from sandbox.workspace import Workspaces

log = logging.getLogger(__name__)
MODES = ("nsjail", "unsafe-local")


def limits_from(policy: SandboxPolicy) -> Limits:
    """The default ``Limits`` of every block, from opsloop.toml's [sandbox]."""
    return Limits(
        wall_seconds=policy.wall_seconds,
        cpu_seconds=policy.cpu_seconds,
        memory_mb=policy.memory_mb,
        tasks=policy.tasks,
        file_size_mb=policy.file_size_mb,
        open_files=policy.open_files,
        tmpfs_mb=policy.tmpfs_mb,
        output_bytes=policy.output_bytes,
    )


def layout_options_from(policy: SandboxPolicy) -> LayoutOptions:
    """Interpreters, mounts and environment of the jail, from opsloop.toml's [sandbox]."""
    return LayoutOptions(
        python=policy.python,
        bash=policy.bash,
        python_args=tuple(policy.python_args),
        extra_mounts=tuple(policy.extra_mounts),
        env=dict(policy.env),
        nice=policy.nice,
        mounts={name: decl.path for name, decl in policy.mounts.items()},
    )


def workspace_root(*, settings: Settings, policy: SandboxPolicy) -> Path:
    """Where workspaces live: opsloop.toml's workspace_root, else <data dir>/workspaces."""
    if policy.workspace_root:
        return Path(policy.workspace_root)
    return settings.data_dir / "workspaces"


def workspaces_from(*, settings: Settings, policy: SandboxPolicy) -> Workspaces:
    """The per-conversation workspaces under the data directory (created private, so the
    sandbox, which makes only the workspaces' own directory, finds it so)."""
    root = workspace_root(settings=settings, policy=policy)
    try:
        private_dir(root.parent)
    except OSError as exc:
        raise ConfigError(f"cannot create {root.parent}: {exc.strerror or exc}") from None
    try:
        return Workspaces(
            root=root,
            quota_bytes=policy.workspace_quota_mb * 1024 * 1024,
            idle_seconds=policy.workspace_idle_hours * 3600,
            max_files=policy.workspace_files,
            uid_range=UidRange.parse(policy.uid_range),
            fs=policy.workspace_fs,
        )
    except SandboxError as exc:
        raise ConfigError(f"opsloop.toml [sandbox]: {exc}") from None


def kernel_options_from(policy: SandboxPolicy) -> KernelOptions | None:
    """The warm kernels of [sandbox] (None when ``warm_kernels = false``)."""
    if not policy.warm_kernels:
        return None
    return KernelOptions(
        idle_seconds=policy.kernel_idle_seconds,
        max_kernels=policy.max_kernels,
        prestarted=policy.prestarted,
        max_age_seconds=policy.kernel_max_age_seconds,
    )


def make_sandbox(*, settings: Settings, policy: Policy) -> Sandbox:
    """The sandbox this process should use, per settings and policy."""
    limits = limits_from(policy.sandbox)
    if settings.sandbox_url:
        from sandbox.client import SandboxClient
        from sandbox.routing import RoutedSandbox, split_urls

        urls = split_urls(settings.sandbox_url)
        if len(urls) > 1:  # replicas, each keeping its own workspaces (sandbox/routing.py)
            return RoutedSandbox.from_urls(
                urls, token=settings.sandbox_token, default_limits=limits
            )
        return SandboxClient(
            url=settings.sandbox_url,
            token=settings.sandbox_token,
            default_limits=limits,
            warm=policy.sandbox.warm_kernels,
        )
    if settings.sandbox not in MODES:
        raise ConfigError(
            f"OPSLOOP_SANDBOX={settings.sandbox!r} is not a sandbox mode (use one of: "
            f"{', '.join(MODES)})"
        )
    workspaces = workspaces_from(settings=settings, policy=policy.sandbox)
    options = layout_options_from(policy.sandbox)
    if settings.sandbox == "unsafe-local":
        from sandbox.unsafe import UnsafeLocalSandbox

        return UnsafeLocalSandbox(workspaces=workspaces, options=options, default_limits=limits)
    from sandbox.jail import NsjailSandbox

    return NsjailSandbox.create(
        workspaces=workspaces,
        options=options,
        nsjail=settings.nsjail,
        default_limits=limits,
        kernels=kernel_options_from(policy.sandbox),
    )


def release_workspaces(sandbox: Sandbox) -> None:
    """Unmount the workspace images of a throw-away in-process sandbox (the demo's), so its
    directory can be deleted; a remote or workspace-less sandbox has none."""
    workspaces = getattr(sandbox, "workspaces", None)
    if isinstance(workspaces, Workspaces):
        workspaces.detach_all()
