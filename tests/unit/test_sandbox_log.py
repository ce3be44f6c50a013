# ruff: noqa: E501  (nsjail log lines are quoted verbatim)
"""Reading nsjail's log, decoding output, and choosing a sandbox from settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli.sandboxing import layout_options_from, limits_from, make_sandbox
from bot.config import Policy
from bot.errors import ConfigError
from bot.settings import Settings
from sandbox.client import SandboxClient
from sandbox.jail import decode, parse_log
from sandbox.jail_log import launch_failure
from sandbox.limits import Limits

EXITED = """[I][2026-11-25T09:25:18+0000] Executing '/usr/bin/python3' for '[STANDALONE MODE]'
[I][2026-11-25T09:25:18+0000] pid=6289 ([STANDALONE MODE]) exited with status: 3, (PIDs left: 0)
"""
KILLED = """[I][2026-11-25T09:25:24+0000] pid=6484 ([STANDALONE MODE]) terminated with signal: SIGKILL (9), (PIDs left: 0)
"""
NO_USERNS = """[E][2026-11-25T09:26:53+0000][7510] standaloneMode():274 clone(flags=CLONE_NEWUSER) failed: Operation not permitted
[F][2026-11-25T09:26:53+0000][7510] main():359 Couldn't launch the child process
"""


def test_an_exit_status_is_read_from_the_log() -> None:
    status = parse_log(EXITED)
    assert (status.exit_code, status.signal, status.problems) == (3, None, ())


def test_a_signal_is_read_from_the_log() -> None:
    status = parse_log(KILLED)
    assert (status.exit_code, status.signal) == (None, 9)


def test_a_namespace_failure_explains_the_fix_including_unsafe_local() -> None:
    status = parse_log(NO_USERNS)
    assert status.exit_code is None and status.signal is None
    message = launch_failure(status, "")
    assert "cannot create namespaces" in message and "OPSLOOP_SANDBOX=unsafe-local" in message


def test_problems_are_read_without_nsjails_source_locations() -> None:
    status = parse_log(
        "[E][now][1] newProc():232 execve('/x/python') failed: No such file or directory\n"
    )
    assert status.problems == ("execve('/x/python') failed: No such file or directory",)


def test_invalid_utf8_decodes_with_replacement_characters() -> None:
    assert decode(b"ok \xff \xed\xa0\x80") == "ok \ufffd \ufffd\ufffd\ufffd"


def test_policy_limits_become_the_default_limits() -> None:
    policy = Policy.model_validate({"sandbox": {"wall_seconds": 3, "memory_mb": 128}})
    assert limits_from(policy.sandbox) == Limits(wall_seconds=3, memory_mb=128)
    options = layout_options_from(policy.sandbox)
    assert options.python_args == ("-I", "-S") and options.python == "python3"


def test_a_sandbox_url_selects_the_http_client(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None, data_dir=tmp_path, sandbox_url="http://sbx:8700/", sandbox_token="t"
    )  # type: ignore[call-arg]
    sandbox = make_sandbox(settings=settings, policy=Policy())
    assert isinstance(sandbox, SandboxClient) and sandbox.url == "http://sbx:8700"


def test_an_unknown_sandbox_mode_is_a_config_error(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, sandbox="docker")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="unsafe-local"):
        make_sandbox(settings=settings, policy=Policy())
