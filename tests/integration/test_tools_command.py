"""Command tools against real host commands: argv items, injection, limits, users, secrets."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from pathlib import Path

import psutil
import pytest

from tests.conftest import require_real
from tests.integration.tools_setup import ALICE, PRINT_ARGV, PY, q, registry

ARGV_TOOLS = f"""
[loose]
kind = "command"
argv = [{q(PY)}, {q(PRINT_ARGV)}, "{{value}}"]
[loose.params.value]

[ended]
kind = "command"
argv = [{q(PY)}, {q(PRINT_ARGV)}, "--", "{{value}}", "fixed", "{{value}}"]
[ended.params.value]
"""


async def test_df_reports_the_disk_of_a_path() -> None:
    require_real(shutil.which("df") is not None, "df is not installed")
    tools = registry(
        '[disk]\nkind = "command"\nargv = ["df", "-h", "--", "{path}"]\n'
        '[disk.params.path]\ndefault = "/"\n'
    )
    outcome = await tools.call("disk", {}, caller=ALICE)
    assert outcome.ok, outcome
    assert isinstance(outcome.result, str) and "%" in outcome.result
    assert outcome.result.rstrip().endswith("/")
    await tools.aclose()


async def test_echo_gets_its_argument_as_one_item() -> None:
    tools = registry('[say]\nkind = "command"\nargv = ["echo", "{text}"]\n[say.params.text]\n')
    outcome = await tools.call("say", {"text": "disks  are   full"}, caller=ALICE)
    assert (outcome.ok, outcome.result) == (True, "disks  are   full\n")


@pytest.mark.parametrize("tool", ["loose", "ended"])
async def test_injection_attempts_arrive_as_one_literal_argv_item_and_run_nothing(
    tmp_path: Path, tool: str
) -> None:
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    tools = registry(ARGV_TOOLS)
    attempts = [
        "; rm -rf /",
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"x && touch {marker}",
        f"| touch {marker}",
        "../../etc/passwd",
        "first\nsecond\n",
        "--flag=x",
        "-rf",
        "--",
        "*",
        "~root",
        "$HOME",
        "'quoted' \"double\"",
        "",
    ]
    for value in attempts:
        outcome = await tools.call(tool, {"value": value}, caller=ALICE)
        assert outcome.ok, (value, outcome)
        assert isinstance(outcome.result, str)
        expected = [value] if tool == "loose" else ["--", value, "fixed", value]
        assert json.loads(outcome.result) == expected, value
    assert not marker.exists()


async def test_a_command_past_its_timeout_is_killed_with_all_its_children() -> None:
    tag = f"7{uuid.uuid4().int % 10**6:06d}.5"  # a sleep length no other process uses
    script = 'sleep "$1" & setsid sleep "$1" & (sleep "$1" &) ; sleep "$1"; wait'
    tools = registry(
        f'[hang]\nkind = "command"\nargv = ["bash", "-c", {q(script)}, "_", "{{secs}}"]\n'
        "timeout_seconds = 1\n[hang.params.secs]\n"
    )
    outcome = await tools.call("hang", {"secs": tag}, caller=ALICE)
    assert (outcome.ok, outcome.error) == (False, "timed out after 1 s")
    assert 900 <= outcome.duration_ms < 5000
    assert await no_process_mentions(tag)


async def no_process_mentions(tag: str, *, within: float = 3.0) -> bool:
    for _ in range(int(within / 0.05)):
        alive = []
        for process in psutil.process_iter(["cmdline", "status"]):
            cmdline = process.info["cmdline"] or []
            if any(tag in part for part in cmdline) and process.info["status"] != "zombie":
                alive.append(process.pid)
        if not alive:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_output_over_the_cap_is_cut_and_marked() -> None:
    tools = registry(
        f'[big]\nkind = "command"\nargv = [{q(PY)}, "-c", "print(\'x\' * 100000)"]\n'
        "max_result_bytes = 1000\n"
    )
    outcome = await tools.call("big", {}, caller=ALICE)
    assert outcome.ok and outcome.truncated
    assert (outcome.result, outcome.result_bytes) == ("x" * 1000, 1000)


async def test_a_failing_command_is_a_failed_call_with_its_status_and_stderr() -> None:
    tools = registry(
        '[bad]\nkind = "command"\n'
        'argv = ["sh", "-c", "echo partial; echo oops >&2; echo again >&2; exit 3"]\n'
    )
    outcome = await tools.call("bad", {}, caller=ALICE)
    assert not outcome.ok
    assert outcome.error == "exit status 3: oops / again"
    assert outcome.result == "partial\n"
    assert outcome.refused is None


async def test_a_missing_command_is_a_failed_call_and_doctor_says_so() -> None:
    tools = registry('[nope]\nkind = "command"\nargv = ["opsloop-no-such-command"]\n')
    outcome = await tools.call("nope", {}, caller=ALICE)
    assert (outcome.ok, outcome.error) == (False, "command not found: opsloop-no-such-command")
    [check] = await tools.check()
    assert not check.ok and "not on PATH" in check.detail


async def test_the_environment_is_minimal_plus_the_configured_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPSLOOP_TEST_LEAK", "should-not-be-seen")
    tools = registry('[env]\nkind = "command"\nargv = ["env"]\nenv = { REGION = "eu-1" }\n')
    outcome = await tools.call("env", {}, caller=ALICE)
    assert isinstance(outcome.result, str)
    names = {line.split("=", 1)[0] for line in outcome.result.splitlines()}
    assert names == {"PATH", "LANG", "HOME", "USER", "LOGNAME", "REGION"}


async def test_a_secret_from_env_is_used_by_the_command_and_redacted_from_its_output() -> None:
    tools = registry(
        '[leak]\nkind = "command"\n'
        'argv = ["sh", "-c", "echo token=$T; printf %s \\"$T\\" | base64"]\n'
        'env = { T = "${env:OPSLOOP_TEST_TOKEN}" }\n',
        environ={"OPSLOOP_TEST_TOKEN": "tok-3f9a81c2e7"},
    )
    outcome = await tools.call("leak", {}, caller=ALICE)
    assert outcome.result == "token=[redacted:OPSLOOP_TEST_TOKEN]\n[redacted:OPSLOOP_TEST_TOKEN]\n"
    assert outcome.redacted == ("OPSLOOP_TEST_TOKEN",)
    assert tools.secrets == {"OPSLOOP_TEST_TOKEN": "tok-3f9a81c2e7"}


async def test_cwd_is_where_the_command_runs() -> None:
    tools = registry('[here]\nkind = "command"\nargv = ["pwd"]\ncwd = "/tmp"\n')
    assert (await tools.call("here", {}, caller=ALICE)).result == "/tmp\n"


async def test_run_as_switches_to_the_configured_user() -> None:
    require_real(os.geteuid() == 0, "run_as needs opsloop to run as root")
    tools = registry(
        '[who]\nkind = "command"\nargv = ["id", "-u"]\nrun_as = "nobody"\n'
        '[root_home]\nkind = "command"\nargv = ["ls"]\nrun_as = "nobody"\ncwd = "/root"\n'
    )
    assert (await tools.call("who", {}, caller=ALICE)).result == "65534\n"
    outcome = await tools.call("root_home", {}, caller=ALICE)
    assert (outcome.ok, outcome.error) == (False, "could not enter cwd /root as nobody")


async def test_doctor_says_when_a_secret_is_too_short_to_be_redacted() -> None:
    tools = registry(
        '[short]\nkind = "command"\nargv = ["env"]\nenv = { FLAG = "${env:OPSLOOP_FLAG}" }\n',
        environ={"OPSLOOP_FLAG": "true"},
    )
    [check] = await tools.check()
    assert check.ok
    assert check.detail == (
        "env is executable; not redacted, shorter than 6 characters: OPSLOOP_FLAG"
    )
    assert (await tools.call("short", {}, caller=ALICE)).redacted == ()
