# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
"""Hostile blocks against the tool channel, in a real nsjail: whatever they send, the host
does bounded work, answers or closes, and keeps nothing once the run ends.

Every test needs real namespaces: on a laptop without them it skips with the reason, under
CI=true it fails (``require_real``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from sandbox.jail import NsjailSandbox
from sandbox.limits import Limits
from sandbox.relay import MAX_ACCEPTS, MAX_CONNECTIONS, MAX_FRAMES
from sandbox.rundir import runs_root
from tests.integration.sandbox_fixtures import (  # noqa: F401  (fixtures)
    data_dir,
    jail,
    private_uids,
    workspaces,
    workspaces_for,
)
from tests.integration.tool_broker_fake import FakeBroker

pytestmark = pytest.mark.nsjail
CONNECT = """
import json, socket
def connect():
    s = socket.socket(socket.AF_UNIX)
    s.connect('/opsloop/tools.sock')
    return s
def read_all(s):
    data = b''
    try:
        while chunk := s.recv(65536):
            data += chunk
    except OSError as exc:
        data += f'<{exc.strerror}>'.encode()
    return data.decode()
"""


TEN = Limits(wall_seconds=10)


async def py(jail, code: str, broker, limits: Limits = TEN):  # type: ignore[no-untyped-def]
    return await jail.run(
        language="python", code=CONNECT + textwrap.dedent(code), limits=limits, tools=broker
    )


def other_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


def socket_fds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return count


async def test_a_10_mib_request_line_is_refused_as_too_large_and_its_connection_closed(
    jail,
) -> None:
    broker = FakeBroker()
    code = """
        s = connect()
        try:
            s.sendall(b'{"op": "' + b'x' * (10 * 1024 * 1024) + b'"}\\n')
        except OSError as exc:
            print('send:', exc.strerror)
        print(read_all(s))
    """
    result = await py(jail, code, broker)
    assert '{"ok":false,"error":"request too large"}' in result.stdout, result.stderr
    assert broker.frames == []


async def test_frames_that_are_not_a_json_object_are_answered_and_the_connection_goes_on(
    jail,
) -> None:
    broker = FakeBroker()
    code = """
        s = connect()
        f = s.makefile('rb')
        for line in [b'not json', b'\\xff\\xfe{}', b'[1, 2]', b'"text"', b'NaN',
                     b'{"a": NaN}', b'{"a": Infinity}', b'[' * 100000, b'',
                     b'{"n": 1' + b'0' * 5000 + b'}', b'{"op": "list"}']:
            s.sendall(line + b'\\n')
            print(json.loads(f.readline()).get('error', 'ok'))
    """
    result = await py(jail, code, broker)
    lines = result.stdout.splitlines()
    assert lines[:-1] == ["a request is one JSON object in UTF-8 on one line"] * 10, result.stderr
    assert lines[-1] == "ok"
    assert broker.frames == [{"op": "list"}]


async def test_a_hundred_connections_at_once_get_eight_served_and_the_rest_refused(jail) -> None:
    broker = FakeBroker(delay=0.3)
    code = """
        import time
        held = [connect() for _ in range(100)]
        time.sleep(0.5)
        refused = served = 0
        for s in held:
            s.settimeout(0.05)
            try:
                data = s.recv(1000)
            except socket.timeout:
                data = b''
            if b'too many open connections' in data:
                refused += 1
            else:
                s.settimeout(5)
                s.sendall(b'{"op": "call", "tool": "slow", "arguments": {}}\\n')
                served += 1
        answers = [s.makefile('rb').readline() for s in held[:served]]
        print(refused, served, sum(b'slept' in a for a in answers))
    """
    result = await py(jail, code, broker)
    expected = [str(100 - MAX_CONNECTIONS), str(MAX_CONNECTIONS), str(MAX_CONNECTIONS)]
    assert result.stdout.split() == expected, result.stderr
    assert broker.peak <= MAX_CONNECTIONS


async def test_a_hundred_thousand_frames_stop_at_the_runs_cap_and_the_socket_stops_listening(
    jail,
) -> None:
    broker = FakeBroker()
    code = """
        import threading
        s = connect()
        frame = b'{"op": "call", "tool": "noop", "arguments": {}}\\n'
        def flood():
            try:
                s.sendall(frame * 100_000)
            except OSError:
                pass
        threading.Thread(target=flood, daemon=True).start()
        lines = [line for line in read_all(s).splitlines() if line.startswith('{')]
        print(len(lines), sum('"ok":true' in line for line in lines), lines[-1])
        try:
            connect()
            print('connected again')
        except OSError as exc:
            print('reconnect:', exc.strerror)
    """
    started = time.monotonic()
    result = await py(jail, code, broker)
    first, second = result.stdout.splitlines()
    assert first.startswith(f"{MAX_FRAMES + 1} {MAX_FRAMES} "), result.stderr
    assert "too many tool requests in this run" in first
    assert second == "reconnect: Connection refused"
    assert len(broker.frames) == MAX_FRAMES
    assert time.monotonic() - started < 8


async def test_a_connection_held_past_the_end_of_the_run_is_closed_and_nothing_is_left(
    jail, caplog: pytest.LogCaptureFixture
) -> None:
    broker = FakeBroker(delay=60)
    code = """
        import os, time
        half = connect()
        half.sendall(b'{"op": "li')                 # a request never finished
        busy = connect()
        busy.sendall(b'{"op": "call", "tool": "slow", "arguments": {}}\\n')
        if os.fork() == 0:                           # a child holding both, and more
            os.setsid()
            extra = connect()
            time.sleep(600)
        time.sleep(600)
    """
    fds_before = socket_fds()
    result = await py(jail, code, broker, limits=Limits(wall_seconds=1.5))
    assert result.timed_out
    assert broker.cancelled == 1  # the call under way when the run ended was abandoned
    assert other_tasks() == []
    assert socket_fds() == fds_before
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_block_whose_broker_is_slow_still_ends_at_its_wall_limit(jail) -> None:
    broker = FakeBroker(delay=30)
    code = """
        import tools
        print('calling', flush=True)
        tools.slow()
        print('never')
    """
    started = time.monotonic()
    result = await py(jail, code, broker, limits=Limits(wall_seconds=2))
    assert result.timed_out and result.stdout == "calling\n"
    assert time.monotonic() - started < 4
    assert broker.cancelled == 1


def _sockets_seen_code(other: str, host_abstract: str, jail_abstract: str) -> str:
    return f"""
        import os, stat
        found = []
        for top, dirs, files in os.walk('/'):
            if top == '/proc':
                dirs[:] = []
                continue
            for name in files + dirs:
                path = os.path.join(top, name)
                try:
                    if stat.S_ISSOCK(os.lstat(path).st_mode):
                        found.append(path)
                except OSError:
                    pass
        print('walk', found)
        fds = set()
        for pid in filter(str.isdigit, os.listdir('/proc')):
            try:
                for fd in os.listdir(f'/proc/{{pid}}/fd'):
                    if os.readlink(f'/proc/{{pid}}/fd/{{fd}}').startswith('socket:'):
                        fds.add(pid)
            except OSError:
                pass
        print('pids with sockets', sorted(fds))
        print('net/unix', [l.split()[-1] for l in open('/proc/net/unix').read().splitlines()[1:]
                           if len(l.split()) > 7])
        for target in [{other!r}, '\\0' + {host_abstract!r}, '\\0' + {jail_abstract!r}]:
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(target)
                print('REACHED', target)
            except OSError as exc:
                print('refused', exc.strerror)
    """


async def test_a_block_reaches_no_other_runs_socket_by_path_fd_or_abstract_name(jail) -> None:
    tag = uuid.uuid4().hex[:12]
    host_abstract, jail_abstract = f"opsloop-host-{tag}", f"opsloop-jail-{tag}"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind("\0" + host_abstract)  # on the host: another network namespace
    listener.listen()
    before = set(runs_root().glob("run-*/tools.sock"))
    other = asyncio.create_task(
        py(
            jail,
            f"""
            import time
            s = socket.socket(socket.AF_UNIX)
            s.bind('\\0' + {jail_abstract!r})
            s.listen()
            print('listening', flush=True)
            time.sleep(4)
            """,
            FakeBroker(),
        )
    )
    try:
        for _ in range(200):
            new = set(runs_root().glob("run-*/tools.sock")) - before
            if new:
                break
            await asyncio.sleep(0.02)
        assert new, "the other run's socket never appeared"
        other_socket = str(next(iter(new)))
        await asyncio.sleep(0.5)  # its block is up and listening on its abstract name
        code = _sockets_seen_code(other_socket, host_abstract, jail_abstract)
        result = await py(jail, code, FakeBroker())
    finally:
        listener.close()
        await other
    lines = result.stdout.splitlines()
    assert lines[0] == "walk ['/opsloop/tools.sock']", result.stderr
    assert lines[1] == "pids with sockets []"  # the channel lives outside the jail's pids
    assert other_socket not in lines[2] and "tools.sock" not in lines[2]
    assert lines[3:] == [
        "refused No such file or directory",
        "refused Connection refused",
        "refused Connection refused",
    ]


async def test_a_run_without_tools_has_no_socket_no_module_and_todays_flags(jail) -> None:
    code = """
        import os, sys
        print(sorted(os.listdir('/opsloop')), sys.flags.isolated, os.environ['PATH'])
        try:
            import tools
        except ModuleNotFoundError:
            print('no tools')
    """
    result = await jail.run(language="python", code=textwrap.dedent(code))
    assert result.stdout.splitlines() == [
        "['code'] 1 /usr/local/bin:/usr/bin:/bin",
        "no tools",
    ], result.stderr


async def test_the_socket_is_mode_0600_and_the_client_read_only(jail) -> None:
    code = """
        import os, stat
        for path in ['/opsloop/tools.sock', '/opsloop/tools.py', '/opsloop/bin/tool']:
            print(path, oct(stat.S_IMODE(os.stat(path).st_mode)))
        for path in ['/opsloop/tools.py', '/opsloop/bin/tool', '/opsloop/tools.sock']:
            try:
                os.chmod(path, 0o777)
            except OSError as exc:
                print('chmod', exc.strerror)
        try:
            open('/opsloop/evil.py', 'w')
        except OSError as exc:
            print('create', exc.strerror)
    """
    result = await py(jail, code, FakeBroker())
    assert result.stdout.splitlines() == [
        "/opsloop/tools.sock 0o600",
        "/opsloop/tools.py 0o444",
        "/opsloop/bin/tool 0o555",
        "chmod Read-only file system",
        "chmod Read-only file system",
        "chmod Read-only file system",
        "create Read-only file system",
    ], result.stderr


async def test_on_the_host_the_socket_is_the_runs_own_0600_in_its_0700_directory(
    jail, data_dir: Path
) -> None:
    # Uids of this test's own, so the socket is told apart from other runs on this machine.
    own = NsjailSandbox(
        nsjail=jail.nsjail,
        layout=jail.layout,
        cgroups=jail.cgroups,
        workspaces=workspaces_for(data_dir, fs="directory", uids=private_uids()),
    )
    owner = own.workspaces.scratch_owner()

    def ours() -> list[Path]:
        return [p for p in runs_root().glob("run-*/tools.sock") if p.stat().st_uid == owner[0]]

    run = asyncio.create_task(py(own, "import time; time.sleep(1.5)", FakeBroker()))
    try:
        for _ in range(200):
            if found := ours():
                break
            await asyncio.sleep(0.02)
        assert found, "the run's socket never appeared"
        path = found[0]
        sock, directory = path.stat(), path.parent.stat()
    finally:
        await run
        await own.aclose()
    assert (sock.st_uid, sock.st_gid, sock.st_mode & 0o777) == (*owner, 0o600)
    assert (directory.st_uid, directory.st_mode & 0o777) == (owner[0], 0o700)
    assert not path.exists()  # gone with its run


async def test_connecting_over_and_over_stops_at_the_runs_cap_of_connections(jail) -> None:
    broker = FakeBroker()
    code = """
        answered = 0
        for _ in range(5000):
            try:
                s = connect()
                s.sendall(b'{"op": "list"}\\n')
                if not s.recv(10):
                    break
            except OSError as exc:
                break
            answered += 1
            s.close()
        print(answered)
    """
    result = await py(jail, code, broker)
    assert result.stdout == f"{MAX_ACCEPTS}\n", result.stderr
    assert len(broker.frames) == MAX_ACCEPTS
