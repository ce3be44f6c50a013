# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
"""When a warm kernel ends: least recently used first past ``max_kernels``, after
``idle_seconds`` without a block, at ``max_age_seconds``; and warm kernels through
``opsloop serve sandbox``, keyed by workspace, with ``warm: false`` honoured.

Real nsjail; under CI=true a missing jail fails the test rather than skipping it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from sandbox.kernel import RESTARTED
from sandbox.kernels import KernelOptions
from sandbox.limits import Limits
from sandbox.workspace import Workspaces
from tests.conftest import require_real
from tests.integration.sandbox_fixtures import data_dir, workspaces  # noqa: F401  (fixtures)
from tests.integration.sandbox_service_helpers import TOKEN, service_process

pytestmark = pytest.mark.nsjail
LIMITS = Limits(wall_seconds=5)


@asynccontextmanager
async def sandbox_with(workspaces: Workspaces, **options: float) -> AsyncIterator[object]:
    from sandbox.errors import SandboxError
    from sandbox.jail import NsjailSandbox

    kernels = KernelOptions(prestarted=0, **options)  # type: ignore[arg-type]
    try:
        sandbox = NsjailSandbox.create(workspaces=workspaces, kernels=kernels)
        await sandbox.run(language="bash", code="true")
    except SandboxError as exc:
        require_real(False, f"jails cannot run here: {exc}")
    require_real(sandbox.warm_kernels, "warm kernels need the pids cgroup")
    try:
        yield sandbox
    finally:
        await sandbox.aclose()


async def kinds(sandbox, *names: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Run ``x = x + 1`` (or 1) in each workspace in turn; the kernel each block got."""
    code = "x = globals().get('x', 0) + 1\nprint(x)"
    results = [
        await sandbox.run(language="python", code=code, limits=LIMITS, workspace=name)
        for name in names
    ]
    return [r.kernel for r in results]


async def eventually(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    for _ in range(int(seconds / 0.1)):
        if check():
            return True
        await asyncio.sleep(0.1)
    return check()


async def test_past_max_kernels_the_least_recently_used_kernel_goes_first(
    workspaces: Workspaces,
) -> None:
    async with sandbox_with(workspaces, max_kernels=2) as sandbox:
        first = await kinds(sandbox, "conv-a", "conv-b", "conv-a", "conv-c")
        assert first == ["new", "new", "warm", "new"]  # conv-b was least recently used
        assert set(sandbox.kernels().warm) == {"conv-a", "conv-c"}  # type: ignore[attr-defined]
        assert await kinds(sandbox, "conv-a", "conv-b") == ["warm", "restarted"]


async def test_a_kernel_idle_past_kernel_idle_seconds_is_stopped_and_the_next_block_told(
    workspaces: Workspaces,
) -> None:
    async with sandbox_with(workspaces, idle_seconds=1.0) as sandbox:
        assert await kinds(sandbox, "conv-idle") == ["new"]
        kernel = sandbox.kernels().warm["conv-idle"]  # type: ignore[attr-defined]
        assert await eventually(lambda: kernel.started.exited.done())  # stopped, not just forgotten
        result = await sandbox.run(  # type: ignore[attr-defined]
            language="python", code="print(x)", limits=LIMITS, workspace="conv-idle"
        )
        assert result.kernel == "restarted" and result.stderr.startswith(RESTARTED + "\n")


async def test_a_kernel_past_its_maximum_age_is_retired_before_its_next_block(
    workspaces: Workspaces,
) -> None:
    async with sandbox_with(workspaces, max_age_seconds=1.0) as sandbox:
        assert await kinds(sandbox, "conv-old", "conv-old") == ["new", "warm"]
        await asyncio.sleep(1.2)
        assert await kinds(sandbox, "conv-old") == ["restarted"]


async def test_through_the_service_kernels_are_kept_by_workspace_and_warm_false_is_honoured(
    data_dir: Path,
) -> None:
    from sandbox.client import SandboxClient

    config = "[sandbox]\nprestarted = 0\n"
    async with service_process(data_dir, config=config) as service:
        warm = SandboxClient(url=service.url, token=TOKEN)
        cold = SandboxClient(url=service.url, token=TOKEN, warm=False)
        try:
            await warm.run(language="python", code="x = 41", limits=LIMITS, workspace="conv-1")
            other = await warm.run(
                language="python", code="print(x)", limits=LIMITS, workspace="conv-2"
            )
            second = await warm.run(
                language="python", code="print(x + 1)", limits=LIMITS, workspace="conv-1"
            )
            unwarmed = [
                await cold.run(language="python", code="y = 1\nprint(1)", workspace="conv-3")
                for _ in range(2)
            ]
        finally:
            await warm.aclose()
            await cold.aclose()
    assert (second.kernel, second.stdout) == ("warm", "42\n"), second
    assert other.kernel == "new" and "NameError" in other.stderr
    assert [r.kernel for r in unwarmed] == ["new", "new"]


async def test_a_restart_of_the_service_is_a_restart_for_the_conversation(
    data_dir: Path,
) -> None:
    from sandbox.client import SandboxClient

    results = []
    for code in ("x = 1", "print(x)"):
        async with service_process(data_dir, config="[sandbox]\nprestarted = 0\n") as service:
            client = SandboxClient(url=service.url, token=TOKEN)
            try:
                results.append(
                    await client.run(
                        language="python", code=code, limits=LIMITS, workspace="conv-r"
                    )
                )
            finally:
                await client.aclose()
    assert [r.kernel for r in results] == ["new", "restarted"]
    assert results[1].stderr.startswith(RESTARTED + "\n") and "NameError" in results[1].stderr


async def test_bash_blocks_run_in_fresh_jails_on_the_same_workspace_as_the_kernel(
    workspaces: Workspaces,
) -> None:
    async with sandbox_with(workspaces) as sandbox:
        run = sandbox.run  # type: ignore[attr-defined]
        await run(
            language="python",
            code="x = 41\nopen('/workspace/from-python', 'w').write('py')",
            limits=LIMITS,
            workspace="conv-mixed",
        )
        shell = await run(
            language="bash",
            code='cat /workspace/from-python; echo sh > /workspace/from-bash; echo " $$"',
            limits=LIMITS,
            workspace="conv-mixed",
        )
        back = await run(
            language="python",
            code="print(open('/workspace/from-bash').read().strip(), x + 1)",
            limits=LIMITS,
            workspace="conv-mixed",
        )
    assert shell.kernel == "new" and shell.stdout.startswith("py ")
    assert (back.kernel, back.stdout) == ("warm", "sh 42\n"), back


async def test_a_kernel_whose_workspace_was_removed_and_made_again_is_not_used_again(
    workspaces: Workspaces,
) -> None:
    async with sandbox_with(workspaces) as sandbox:
        code = "open('/workspace/mark', 'w').write('old')\nprint(1)"
        first = await sandbox.run(
            language="python", code=code, limits=LIMITS, workspace="conv-moved"
        )
        assert first.kernel == "new", first
        assert await asyncio.to_thread(workspaces.remove, "conv-moved")
        code = "import os\nprint(os.path.exists('/workspace/mark'))"
        again = await sandbox.run(
            language="python", code=code, limits=LIMITS, workspace="conv-moved"
        )
        # The warm kernel's mount is the removed workspace's: a new kernel gets the new one.
        assert (again.kernel, again.stdout) == ("restarted", "False\n"), again
