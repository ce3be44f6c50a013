# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
"""What a warm kernel adds, attacked: other conversations' kernels, the framing, leftovers,
bombs, and a hostile block that goes after the kernel it runs in.

Real nsjail; under CI=true a missing jail fails the test rather than skipping it.
"""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox.kernel import RESTARTED, TAMPERED
from sandbox.kernels import KernelOptions
from sandbox.limits import Limits
from sandbox.workspace import Workspaces
from tests.conftest import require_real
from tests.integration.sandbox_fixtures import (  # noqa: F401  (fixtures)
    canary,
    data_dir,
    jail_processes,
    marker,
    workspaces,
)

pytestmark = pytest.mark.nsjail
LIMITS = Limits(wall_seconds=5)


@pytest.fixture
async def warm(workspaces: Workspaces) -> AsyncIterator[object]:
    """A real sandbox with warm kernels (and a prestarted pool)."""
    from sandbox.errors import SandboxError
    from sandbox.jail import NsjailSandbox

    try:
        sandbox = NsjailSandbox.create(workspaces=workspaces, kernels=KernelOptions(prestarted=1))
        await sandbox.run(language="bash", code="true")
    except SandboxError as exc:
        require_real(False, f"jails cannot run here: {exc}")
    require_real(sandbox.warm_kernels, "warm kernels need the pids cgroup")
    yield sandbox
    await sandbox.aclose()


async def py(sandbox, code: str, workspace: str, limits: Limits = LIMITS, **kw):  # type: ignore[no-untyped-def]
    return await sandbox.run(
        language="python", code=textwrap.dedent(code), limits=limits, workspace=workspace, **kw
    )


# -- the done-when of the issue, at the sandbox -------------------------------------------


async def test_a_variable_of_one_block_is_there_in_the_next(warm) -> None:
    first = await py(warm, "x = 41", "conv-x")
    second = await py(warm, "print(x + 1)", "conv-x")
    assert (first.kernel, second.kernel, second.stdout) == ("new", "warm", "42\n"), second


async def test_exit_status_and_tracebacks_are_those_of_a_script(warm) -> None:
    exits = await py(warm, "import sys; sys.exit(3)", "conv-exit")
    fails = await py(warm, "def f():\n    1 / 0\nf()", "conv-exit")
    syntax = await py(warm, "x = (", "conv-exit")
    message = await py(warm, "raise SystemExit('bye')", "conv-exit")
    assert exits.exit_code == 3 and fails.exit_code == 1 and syntax.exit_code == 1
    assert fails.stderr.startswith('Traceback (most recent call last):\n  File "/opsloop/code"')
    assert "ZeroDivisionError" in fails.stderr and "<string>" not in fails.stderr
    assert "SyntaxError" in syntax.stderr
    assert (message.exit_code, message.stderr) == (1, "bye\n")
    assert {r.kernel for r in (exits, fails, syntax, message)} == {"new", "warm"}


async def test_a_lost_kernel_says_so_in_the_next_result_and_files_remain(warm) -> None:
    await py(warm, "x = 1\nopen('/workspace/kept', 'w').write('file')", "conv-lost")
    timed = await py(warm, "import time; time.sleep(60)", "conv-lost", Limits(wall_seconds=1))
    after = await py(warm, "print(open('/workspace/kept').read()); print(x)", "conv-lost")
    assert timed.timed_out and timed.signal == 9
    assert after.kernel == "restarted" and after.stdout == "file\n"
    assert after.stderr.startswith(RESTARTED + "\n") and "NameError" in after.stderr


async def test_a_restart_of_the_sandbox_is_a_restart_for_the_conversation(
    warm, workspaces: Workspaces
) -> None:
    from sandbox.jail import NsjailSandbox

    await py(warm, "x = 1", "conv-again")
    await warm.aclose()
    again = NsjailSandbox.create(workspaces=workspaces, kernels=KernelOptions(prestarted=0))
    try:
        result = await py(again, "print('hi')", "conv-again")
    finally:
        await again.aclose()
    assert result.kernel == "restarted" and result.stderr == RESTARTED + "\n"


# -- one conversation's kernel is never reachable from another's ----------------------------


async def test_one_conversations_kernel_is_never_reachable_from_anothers(warm) -> None:
    secret = uuid.uuid4().hex
    await py(
        warm,
        f"""
        import socket
        secret = {secret!r}
        listener = socket.socket(socket.AF_UNIX)
        listener.bind('\\0opsloop-kernel-a')
        listener.listen()
        """,
        "conv-a",
    )
    probe = await py(
        warm,
        f"""
        import os, signal, socket
        pids = [p for p in os.listdir('/proc') if p.isdigit()]
        print('pids', pids)
        found = []
        for pid in pids:
            for part in ('environ', 'cmdline'):
                if {secret!r}.encode() in open(f'/proc/{{pid}}/{{part}}', 'rb').read():
                    found.append(pid)
        print('found', found)
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect('\\0opsloop-kernel-a')
            print('REACHED')
        except OSError as exc:
            print('refused', exc.strerror)
        print('unix', open('/proc/net/unix').read().count('opsloop-kernel-a'))
        os.kill(-1, signal.SIGKILL)  # everything this block may signal: only its own
        """,
        "conv-b",
    )
    after = await py(warm, "print(secret, listener.fileno() > 0)", "conv-a")
    assert probe.stdout.splitlines() == [
        "pids ['1']",
        "found []",
        "refused Connection refused",
        "unix 0",
    ], probe.stderr
    assert (after.kernel, after.stdout) == ("warm", f"{secret} True\n"), after
    owners = {warm.workspaces.owner("conv-a"), warm.workspaces.owner("conv-b")}
    assert len(owners) == 2  # each kernel runs as its workspace's own host uid


async def test_a_block_without_a_workspace_never_runs_in_a_kernel(warm) -> None:
    first = await warm.run(language="python", code="x = 1")
    second = await warm.run(language="python", code="print(x)")
    assert first.kernel == second.kernel == "new" and "NameError" in second.stderr


# -- the framing: out of band, with a nonce --------------------------------------------------


async def test_frames_printed_to_stdout_or_stderr_are_only_output(warm) -> None:
    code = """
        import sys
        print('DONE 0123456789abcdef0123456789abcdef 2 0')
        print('READY x', file=sys.stderr)
        raise SystemExit(4)
    """
    result = await py(warm, code, "conv-print")
    assert result.exit_code == 4 and result.stdout.startswith("DONE ") and not result.timed_out
    await canary(warm, "conv-print", limits=LIMITS)


async def test_a_block_cannot_forge_a_result_by_writing_to_the_control_channel(warm) -> None:
    code = """
        import os
        for fd in sorted(int(name) for name in os.listdir('/proc/self/fd'))[3:]:
            for line in (b'DONE 0123456789abcdef0123456789abcdef 2 0\\n', b'DONE x 3 0\\n'):
                try:
                    os.write(fd, line)
                except OSError:
                    pass
        import time; time.sleep(0.2)
        print('after')
    """
    forged = await py(warm, code, "conv-forge")
    real = await py(warm, "print('real')\nraise SystemExit(3)", "conv-forge")
    assert forged.signal == 9 and forged.stderr.endswith(TAMPERED), forged
    assert (real.stdout, real.exit_code, real.kernel) == ("real\n", 3, "restarted"), real


# A block runs in the kernel's own process, so it can find the nonce in memory. What it must
# not do is leave code that runs during the next block unasked and writes that block's DONE:
# a finalizer of garbage only the collector frees, armed with the nonce, the control fd and
# the next sequence number, with the collector turned off so the garbage outlives the block.
FINALIZER_FORGERY = """
    import gc, os, sys
    kernel = next(o for o in gc.get_objects() if type(o).__name__ == '_Kernel')
    frame = sys._getframe()
    while frame.f_code.co_name != 'serve':
        frame = frame.f_back
    following = str(int(frame.f_locals['seq']) + 1).encode()
    line = b'DONE ' + kernel.nonce + b' ' + following + b' 0\\n'

    class Forger:
        def __del__(self, fd=kernel.write_fd, line=line, write=os.write):
            write(fd, line)

    forger = Forger()
    forger.cycle = forger
    del forger
    gc.disable()
    gc.freeze()
"""


async def test_garbage_left_to_the_collector_cannot_forge_the_next_blocks_result(warm) -> None:
    await py(warm, FINALIZER_FORGERY, "conv-finalizer")
    # The next block collects (as any allocation may): nothing of the last block is left.
    code = "import gc\ngc.unfreeze()\ngc.collect()\nprint('mine')\nraise SystemExit(5)"
    mine = await py(warm, code, "conv-finalizer")
    assert (mine.stdout, mine.exit_code) == ("mine\n", 5), mine
    again = await py(warm, "import gc; print(gc.isenabled())", "conv-finalizer")
    assert again.stdout == "True\n", again


async def test_the_nonce_is_in_neither_argv_nor_environment_nor_a_file(warm) -> None:
    code = """
        import os
        print(open('/proc/1/cmdline', 'rb').read().count(b'NONCE'))
        print(sorted(os.environ))
        print(sorted(os.listdir('/opsloop')))
    """
    result = await py(warm, code, "conv-nonce")
    kernel = warm.kernels().warm["conv-nonce"]
    assert kernel.nonce.decode() not in result.stdout
    assert result.stdout.splitlines()[1:] == ["['HOME', 'LANG', 'PATH']", "['code']"]


# -- leftovers never bleed into the next block ----------------------------------------------


@pytest.mark.parametrize(
    "leftover",
    [
        "import threading, time, sys\n"
        "def talk():\n    while True:\n        print('bleed', flush=True); time.sleep(0.001)\n"
        "threading.Thread(target=talk, daemon=True).start(); time.sleep(0.05)",
        "import subprocess\n"
        "subprocess.Popen(['sh', '-c', 'while :; do echo bleed; sleep 0.001; done'])\n"
        "import time; time.sleep(0.05)",
        "import os\nif os.fork() == 0:\n    import time\n    while True:\n"
        "        os.write(1, b'bleed\\n'); time.sleep(0.001)",
        "import signal\nsignal.signal(signal.SIGALRM, lambda *a: print('bleed', flush=True))\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)",
        "import gc\ngc.callbacks.append(lambda *a: print('bleed', flush=True))",
        "import sys\nsys.addaudithook(lambda *a: print('bleed', flush=True))",
        "import atexit\natexit.register(print, 'bleed')",
    ],
    ids=["thread", "child", "fork", "timer", "gc-callback", "audit-hook", "atexit"],
)
async def test_something_left_running_does_not_bleed_into_the_next_blocks_result(
    warm, leftover: str
) -> None:
    await py(warm, leftover, "conv-bleed")
    await asyncio.sleep(0.1)
    after = await py(warm, "import time; time.sleep(0.1); print('clean')", "conv-bleed")
    assert after.stdout == "clean\n", after
    assert after.kernel in ("warm", "restarted")


# -- bombs kill only their own kernel --------------------------------------------------------


async def test_a_fork_bomb_and_a_memory_bomb_kill_only_their_kernel(warm) -> None:
    await py(warm, "x = 'still here'", "conv-calm")
    tag = marker()
    bomb = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    fork = await py(
        warm,
        f"import os, sys; os.execv(sys.executable, [{tag!r}, '-I', '-S', '-c', {bomb!r}])",
        "conv-bomb",
        Limits(wall_seconds=1.5, tasks=16),
    )
    memory = await py(
        warm,
        "chunks = []\nwhile True:\n    chunks.append(bytearray(8 << 20))",
        "conv-bomb",
        Limits(wall_seconds=5, memory_mb=64),
    )
    calm = await py(warm, "print(x)", "conv-calm")
    assert fork.exit_code != 0 and jail_processes(tag) == []
    assert memory.memory_exceeded and memory.signal == 9
    assert (calm.kernel, calm.stdout) == ("warm", "still here\n")
    assert "conv-bomb" not in warm.kernels().warm  # retired: its next block starts anew


# -- a hostile block against its own kernel: the next block gets exactly its own result -----


@pytest.mark.parametrize(
    "hostile",
    [
        "import os\nos.closerange(3, 1024)",
        "import os\nfor fd in range(3, 64):\n    try:\n        os.dup2(1, fd)\n"
        "    except OSError:\n        pass",
        "import os\nos.close(0); os.close(1); os.close(2)",
        "import sys, io\nsys.stdout = io.StringIO(); sys.stderr = io.StringIO()",
        "import sys\nsys.stdout.close(); sys.stderr.close()",
        "import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):\n"
        "    signal.signal(s, signal.SIG_IGN)",
        "import builtins\nbuiltins.print = builtins.exec = builtins.compile = None",
        "import sys\nsys.setrecursionlimit(30)",
        "import sys\nsys.settrace(lambda *a: print('traced'))",
        "import sys\nsys.modules['__main__'] = None",
        "import os\nos.chdir('/tmp')",
        "import os\nos._exit(0)",
        "import os\nos.execv('/bin/echo', ['echo', 'replaced'])",
        "import os, sys\nos.execv(sys.executable, ['py', '-c', 'import time; time.sleep(60)'])",
        "raise KeyboardInterrupt",
        "import os, signal\nos.kill(1, signal.SIGSTOP)",
    ],
    ids=[
        "close-fds",
        "dup-over-fds",
        "close-stdio",
        "replace-stdout",
        "close-sys-stdout",
        "ignore-signals",
        "builtins",
        "recursion-limit",
        "settrace",
        "main-module",
        "chdir",
        "os-exit",
        "exec-echo",
        "exec-sleep",
        "keyboard-interrupt",
        "sigstop",
    ],
)
async def test_a_block_that_attacks_its_own_kernel_does_not_change_the_next_result(
    warm, hostile: str
) -> None:
    await py(warm, hostile, "conv-hostile", Limits(wall_seconds=2))
    await canary(warm, "conv-hostile", limits=LIMITS)
    cwd = await py(warm, "import os; print(os.getcwd())", "conv-hostile")
    assert cwd.stdout == "/workspace\n"


# -- the pool, tools and mounts ----------------------------------------------------------------


async def test_a_prestarted_kernel_gets_its_workspace_with_its_own_uid(
    warm, data_dir: Path
) -> None:
    await py(warm, "1", "conv-first")  # the pool fills after a first kernel
    for _ in range(100):
        if warm.kernels().pool:
            break
        await asyncio.sleep(0.05)
    assert warm.kernels().pool, "no kernel was prestarted"
    code = "import os\nopen('/workspace/f', 'w').write('x')\nprint(os.stat('/workspace/f').st_uid)"
    result = await py(warm, code, "conv-pooled")
    owner = warm.workspaces.owner("conv-pooled")
    path = warm.workspaces.path("conv-pooled") / "f"
    assert (result.stdout, result.kernel) == ("65534\n", "new"), result
    assert path.stat().st_uid == owner[0] != warm.workspaces.owner("conv-first")[0]


def spare_mounts() -> list[str]:
    """Mount points of spares (``sandbox.spares``) in this mount namespace."""
    with open("/proc/self/mountinfo") as lines:
        return [line.split()[4] for line in lines if "/.spare-" in line.split()[4]]


async def test_a_spare_waits_mounted_where_no_jail_reaches_and_becomes_the_workspace(
    warm, data_dir: Path
) -> None:
    await py(warm, "1", "conv-spare-first")  # the pool fills after a first kernel
    for _ in range(100):
        if warm.kernels().pool and spare_mounts():
            break
        await asyncio.sleep(0.05)
    waiting = spare_mounts()
    assert len(waiting) == 1, waiting
    images = Path(waiting[0]).parent
    assert images.stat().st_uid == 0 and images.stat().st_mode & 0o777 == 0o700
    result = await py(warm, "open('/workspace/f', 'w').write('x')\nprint(1)", "conv-spare")
    assert (result.stdout, result.kernel) == ("1\n", "new"), result
    home = warm.workspaces.path("conv-spare")
    assert os.path.ismount(home) and (home / "f").read_text() == "x"
    flags = os.statvfs(home).f_flag
    assert flags & os.ST_NOSUID and flags & os.ST_NODEV  # the spare's mount, moved as it was
    assert waiting[0] not in spare_mounts()  # moved, not copied
    await warm.aclose()
    assert spare_mounts() == [], "a spare of a closed pool stayed mounted"


def test_stale_spares_of_a_stopped_process_are_unmounted_and_deleted(tmp_path: Path) -> None:
    from sandbox import spares
    from sandbox.images import unavailable_reason

    require_real(unavailable_reason() is None, f"images: {unavailable_reason()}")
    image = tmp_path / ".spare-0123.ext4"
    spares.make(image, quota_bytes=16 << 20, files=100, owner=(0, 0))
    assert os.path.ismount(spares.mount_point(image))
    spares.sweep(tmp_path, prefix=".spare-", older_than=time.time() - 3600)  # still young
    assert os.path.ismount(spares.mount_point(image))
    spares.sweep(tmp_path, prefix=".spare-", older_than=time.time() + 60)
    assert not spares.mount_point(image).exists() and not image.exists()


def test_young_spares_of_a_process_that_is_gone_are_swept_at_once(tmp_path: Path) -> None:
    """A service restarting in a loop must not pile up mounted spares (and loop devices)."""
    import subprocess

    from sandbox import spares
    from sandbox.images import unavailable_reason

    require_real(unavailable_reason() is None, f"images: {unavailable_reason()}")
    child = subprocess.Popen(["sleep", "60"])
    started = Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[19]
    theirs = tmp_path / f".spare-{child.pid}-{started}-ab12.ext4"
    ours = tmp_path / f".spare-{spares.maker()}-cd34.ext4"
    for image in (theirs, ours):
        spares.make(image, quota_bytes=16 << 20, files=100, owner=(0, 0))
    young = time.time() - 3600
    spares.sweep(tmp_path, prefix=".spare-", older_than=young)
    assert os.path.ismount(spares.mount_point(theirs))  # its maker still runs
    child.kill()
    child.wait()
    spares.sweep(tmp_path, prefix=".spare-", older_than=young)
    assert not spares.mount_point(theirs).exists() and not theirs.exists()
    assert os.path.ismount(spares.mount_point(ours))  # this process's: kept
    spares.drop(ours)


async def test_tools_reach_each_blocks_own_relay_in_a_kernel(warm) -> None:
    seen: list[str] = []

    def relay_for(name: str):  # type: ignore[no-untyped-def]
        async def relay(frame: dict[str, object]) -> dict[str, object]:
            seen.append(name)
            return {"ok": True, "result": name}

        return relay

    code = "import tools\nprint(tools.list())"
    first = await py(warm, code, "conv-tools", tools=relay_for("one"))
    second = await py(warm, code, "conv-tools", tools=relay_for("two"))
    assert (first.kernel, second.kernel) == ("new", "warm"), second
    assert seen == ["one", "two"]


async def test_a_block_needing_other_limits_gets_a_new_kernel(warm) -> None:
    await py(warm, "x = 1", "conv-shape")
    other = await py(warm, "print(x)", "conv-shape", Limits(wall_seconds=5, memory_mb=128))
    assert other.kernel == "restarted" and "NameError" in other.stderr
