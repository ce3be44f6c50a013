# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
"""The adversarial suite: hostile blocks run in a real nsjail, each contained, the host unaffected.

Every test here needs real namespaces: on a laptop without them it skips with the reason,
under CI=true it fails (``require_real``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import textwrap
from pathlib import Path

import pytest

from sandbox.limits import Limits
from tests.integration.sandbox_fixtures import (  # noqa: F401  (fixtures)
    data_dir,
    jail,
    jail_processes,
    marker,
    workspaces,
)

pytestmark = pytest.mark.nsjail
SHORT = Limits(wall_seconds=1.5)


async def py(jail, code: str, limits: Limits = SHORT, workspace: str | None = None):  # type: ignore[no-untyped-def]
    return await jail.run(
        language="python", code=textwrap.dedent(code), limits=limits, workspace=workspace
    )


async def sh(jail, code: str, limits: Limits = SHORT, workspace: str | None = None):  # type: ignore[no-untyped-def]
    return await jail.run(language="bash", code=code, limits=limits, workspace=workspace)


# -- time and resources ---------------------------------------------------------------------


async def test_an_infinite_loop_is_killed_at_the_wall_limit(jail) -> None:
    tag = marker()
    code = f"import os; os.execv('/usr/bin/python3', ['{tag}', '-c', 'while True: pass'])"
    result = await py(jail, code, Limits(wall_seconds=1, cpu_seconds=30))
    assert result.timed_out and result.signal == signal.SIGKILL and result.exit_code is None
    assert jail_processes(tag) == []


async def test_a_cpu_burn_is_stopped_by_the_cpu_limit(jail) -> None:
    result = await py(jail, "while True: pass", Limits(wall_seconds=10, cpu_seconds=1))
    assert result.exit_code is None and result.signal in (signal.SIGXCPU, signal.SIGKILL)
    assert not result.timed_out


async def test_sleeping_past_the_limit_times_out(jail) -> None:
    result = await py(jail, "import time; print('zz', flush=True); time.sleep(60)")
    assert result.timed_out and result.stdout == "zz\n"


async def test_a_memory_bomb_is_killed_and_reported_as_memory_exceeded(jail) -> None:
    code = """
        chunks = []
        while True:
            chunks.append(bytearray(8 * 1024 * 1024))
    """
    result = await py(jail, code, Limits(wall_seconds=5, memory_mb=64))
    if jail.cgroups.kind == "none":  # degraded (sandbox check says so): RLIMIT_AS refuses
        assert result.exit_code != 0 and "MemoryError" in result.stderr
        return
    assert result.signal == signal.SIGKILL and result.memory_exceeded and not result.timed_out


async def test_a_block_cannot_fake_a_kill_it_is_pid_1_of_its_namespace(jail) -> None:
    # SIGKILL from inside a pid namespace does not kill its init, so a SIGKILL in a result
    # really came from outside (our timer, nsjail, or the kernel's OOM killer).
    result = await py(
        jail, "import os, signal; os.kill(os.getpid(), signal.SIGKILL); print('alive')"
    )
    assert result.exit_code == 0 and result.stdout == "alive\n"
    assert not result.memory_exceeded and not result.timed_out


async def test_a_python_fork_bomb_is_capped_and_leaves_nothing_behind(jail) -> None:
    tag = marker()
    bomb = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    code = f"import os, sys; os.execv(sys.executable, [{tag!r}, '-I', '-S', '-c', {bomb!r}])"
    result = await py(jail, code, Limits(wall_seconds=1.5, tasks=16))
    assert result.exit_code != 0
    assert jail_processes(tag) == []


async def test_a_bash_fork_bomb_is_capped_and_leaves_nothing_behind(jail) -> None:
    tag = marker()
    code = f"exec -a {tag} bash -c ':(){{ :|:& }};:; sleep 5'"
    result = await sh(jail, code, Limits(wall_seconds=1.5, tasks=16))
    assert result.exit_code != 0 or result.timed_out
    assert jail_processes(tag) == []


async def test_a_thread_bomb_stops_at_the_task_cap(jail) -> None:
    code = """
        import threading, time
        n = 0
        try:
            while True:
                threading.Thread(target=time.sleep, args=(10,), daemon=True).start()
                n += 1
        except RuntimeError:
            print(n)
    """
    result = await py(jail, code, Limits(wall_seconds=5, tasks=32))
    if jail.cgroups.kind == "none":  # degraded: only RLIMIT_NPROC, which may not count here
        assert result.exit_code is not None or result.timed_out
        return
    assert result.exit_code == 0, result.stderr
    assert 0 < int(result.stdout) < 32


async def test_a_hundred_megabytes_of_output_keeps_only_the_head(jail) -> None:
    code = """
        import os
        block = b"x" * (1 << 20)
        for _ in range(100):
            os.write(1, block)
        os.write(2, b"done")
    """
    result = await py(jail, code, Limits(wall_seconds=20, output_bytes=1 << 20))
    assert result.exit_code == 0
    assert result.output_truncated and len(result.stdout) == 1 << 20 and result.stderr == "done"


# -- filesystem -----------------------------------------------------------------------------


async def test_writing_to_the_system_directories_fails(jail) -> None:
    code = """
        for path in ["/pwned", "/usr/pwned", "/etc/pwned", "/bin/pwned", "/proc/pwned"]:
            try:
                open(path, "w").write("x")
                print("WROTE", path)
            except OSError as exc:
                print("refused", path, exc.errno)
    """
    result = await py(jail, code)
    assert "WROTE" not in result.stdout and result.stdout.count("refused") == 5
    assert not any(Path(p).exists() for p in ["/pwned", "/usr/pwned", "/etc/pwned"])


async def test_filling_tmp_stops_at_its_size(jail) -> None:
    code = """
        import errno
        try:
            with open("/tmp/fill", "wb") as f:
                while True:
                    f.write(b"x" * 65536)
        except OSError as exc:
            print(errno.errorcode[exc.errno])
    """
    result = await py(jail, code, Limits(wall_seconds=5, tmpfs_mb=4))
    assert result.stdout.strip() in {"ENOSPC", "EFBIG"}


async def test_host_files_are_not_visible(jail, data_dir: Path) -> None:
    secret = data_dir / "host-secret.txt"
    secret.write_text("the host's secret")
    secret.chmod(0o644)  # readable by anyone on the host: only the mount table protects it
    db = data_dir / "opsloop.sqlite3"
    sqlite3.connect(db).execute("create table events (x)").connection.commit()
    code = f"""
        for path in [{str(secret)!r}, {str(db)!r}, "/etc/shadow", "/etc/passwd",
                     "/root/.bashrc", "/home"]:
            try:
                open(path, "rb").read()
                print("READ", path)
            except OSError as exc:
                print("hidden", path, type(exc).__name__)
    """
    result = await py(jail, code)
    assert "READ" not in result.stdout, result.stdout
    assert "the host's secret" not in result.stdout + result.stderr


# -- network --------------------------------------------------------------------------------


async def test_there_is_no_network_by_name_by_ip_or_to_the_host_loopback(jail) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(listener.accept())

    code = f"""
        import socket
        for name, action in [
            ("name", lambda: socket.getaddrinfo("example.com", 80)),
            ("ip", lambda: socket.create_connection(("1.1.1.1", 80), timeout=1)),
            ("loopback", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=1)),
        ]:
            try:
                action()
                print("CONNECTED", name)
            except OSError as exc:
                print("blocked", name, type(exc).__name__)
    """
    try:
        result = await py(jail, code, Limits(wall_seconds=5))
        accept()
    finally:
        listener.close()
    assert "CONNECTED" not in result.stdout and result.stdout.count("blocked") == 3
    assert accepted == []


# -- secrets --------------------------------------------------------------------------------


async def test_host_environment_secrets_do_not_leak(jail, monkeypatch) -> None:
    monkeypatch.setenv("OPSLOOP_TEST_SECRET", "hunter2-in-the-host-env")
    result = await py(jail, "import os, json; print(json.dumps(dict(os.environ)))")
    env = json.loads(result.stdout)
    assert "OPSLOOP_TEST_SECRET" not in env
    assert set(env) <= {"PATH", "LANG", "HOME", "LC_CTYPE"}


async def test_proc_shows_only_the_jail_not_host_command_lines(jail) -> None:
    code = """
        import os
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                print(pid, open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" "))
    """
    result = await py(jail, code)
    assert result.exit_code == 0, result.stderr
    assert "pytest" not in result.stdout and "nsjail" not in result.stdout
    assert len(result.stdout.splitlines()) == 1  # the block itself, as pid 1


# -- privilege ------------------------------------------------------------------------------


async def test_killing_pid_1_and_the_parent_does_not_touch_the_host(jail) -> None:
    code = f"""
        import os, signal
        for pid in (os.getppid(), {os.getpid()}, {os.getppid()}):
            try:
                os.kill(pid, signal.SIGKILL) if pid else None
                print("killed?", pid)
            except OSError as exc:
                print("refused", pid, type(exc).__name__)
        os.kill(1, signal.SIGKILL)
        print("still here")
    """
    result = await py(jail, code)
    assert "refused" in result.stdout
    assert f"killed? {os.getpid()}" not in result.stdout  # our pid does not exist in there


async def test_privileged_syscalls_are_refused(jail) -> None:
    code = """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        def errno_of(ret):
            return "ok" if ret == 0 else os.strerror(ctypes.get_errno())
        try:
            os.setuid(0)
            print("setuid ok")
        except OSError as exc:
            print("setuid", exc.strerror)
        print("ptrace", errno_of(libc.ptrace(16, 1, 0, 0)))
        print("unshare", errno_of(libc.unshare(0x10000000)))
        print("mount", errno_of(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)))
        print("bpf", errno_of(libc.syscall(321, 0, 0, 0)))
        print("keyctl", errno_of(libc.syscall(250, 0, 0, 0)))
        print("perf", errno_of(libc.syscall(298, 0, 0, -1, -1, 0)))
        print("clone-newuser", errno_of(libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0)))
    """
    result = await py(jail, code)
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert set(lines) == {
        "setuid",
        "ptrace",
        "unshare",
        "mount",
        "bpf",
        "keyctl",
        "perf",
        "clone-newuser",
    }, result.stdout + result.stderr
    assert "ok" not in lines.values()
    assert lines["unshare"] == lines["mount"] == lines["ptrace"] == "Operation not permitted"


async def test_nested_unshare_from_bash_is_refused(jail) -> None:
    result = await sh(jail, "unshare -Ur id; echo status=$?; mount -t tmpfs none /tmp; echo m=$?")
    assert "uid=0" not in result.stdout
    assert "status=0" not in result.stdout and "m=0" not in result.stdout


# -- leftovers ------------------------------------------------------------------------------


async def test_a_daemonised_grandchild_is_gone_when_the_result_returns(jail) -> None:
    tag = marker()
    code = f"""
        import os
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.closerange(0, 3)
                os.execv("/bin/sleep", ["{tag}", "60"])
            os._exit(0)
        print("parent exits")
    """
    result = await py(jail, code, Limits(wall_seconds=5))
    assert result.exit_code == 0 and not result.timed_out
    assert jail_processes(tag) == []


# -- isolation and robustness ---------------------------------------------------------------


async def test_workspaces_persist_within_a_conversation_and_never_cross(jail) -> None:
    write = await sh(jail, "echo note-of-a > /workspace/a.txt", workspace="conv-a")
    assert write.exit_code == 0, write.stderr
    same = await sh(jail, "cat /workspace/a.txt; pwd", workspace="conv-a")
    other = await sh(jail, "ls -A /workspace; cat /workspace/a.txt", workspace="conv-b")
    none = await sh(jail, "ls -A /workspace")
    assert same.stdout == "note-of-a\n/workspace\n"
    assert "note-of-a" not in other.stdout and other.exit_code != 0
    assert none.stdout == ""


async def test_everyday_tools_reached_through_debian_alternatives_work(jail) -> None:
    # /usr/bin/awk -> /etc/alternatives/awk -> /usr/bin/mawk on Debian.
    result = await jail.run(language="bash", code="echo 'a 42' | awk '{print $2}'")
    assert (result.exit_code, result.stdout) == (0, "42\n"), result.stderr


async def test_a_segfault_through_ctypes_is_a_result(jail) -> None:
    result = await py(jail, "import ctypes; ctypes.string_at(0)")
    assert result.signal == signal.SIGSEGV and not result.timed_out


async def test_invalid_utf8_and_lone_surrogates_are_replaced(jail) -> None:
    code = r"""
        import os
        os.write(1, b"bad \xff\xfe and " + "\ud800".encode("utf-8", "surrogatepass") + b" end")
        os.write(2, b"\xc3")
    """
    result = await py(jail, code)
    assert result.stdout.startswith("bad \ufffd\ufffd and ") and result.stdout.endswith(" end")
    assert result.stderr == "\ufffd"
    json.dumps(result.to_dict()).encode("utf-8")  # storable as an event payload


async def test_nul_bytes_in_the_code_reach_the_interpreter_intact(jail) -> None:
    python = await py(jail, "print(open('/opsloop/code', 'rb').read().count(bytes(1)))\n#\x00\n")
    bash = await sh(jail, "echo before\necho 'a\x00b'\necho after")
    # Python 3.11 stops reading at the NUL; newer versions refuse it: both are results.
    assert python.stdout == "1\n" or "null" in python.stderr, python
    assert "after" in bash.stdout


async def test_many_blocks_run_at_once(jail) -> None:
    import asyncio

    results = await asyncio.gather(
        *(py(jail, f"print({i} * 2)", Limits(wall_seconds=10)) for i in range(8))
    )
    assert [r.stdout for r in results] == [f"{i * 2}\n" for i in range(8)]


def test_the_leftover_check_finds_a_tagged_process_of_any_uid() -> None:
    tag = marker()
    alive = subprocess.Popen([tag, "30"], executable="/bin/sleep", user=65533)
    try:
        assert jail_processes(tag) == [f"{alive.pid} {tag} 30"]
    finally:
        alive.kill()
        alive.wait()
    assert jail_processes(tag) == []
