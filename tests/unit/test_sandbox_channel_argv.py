"""The pure parts of the tool channel and the mounts: the argv they add, the frame rules, the
mount names and the mount table."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.argv import (
    TOOLS_BIN,
    ToolChannel,
    build_argv,
    jail_env,
    python_args_with_tools,
)
from sandbox.cgroups import CgroupSetup
from sandbox.errors import BadRequest
from sandbox.layout import Interpreter, JailLayout
from sandbox.limits import Limits
from sandbox.mounts import MAX_MOUNTS, mounts_below, requested, valid_name
from sandbox.relay import (
    ANSWER_TOO_LARGE,
    BROKER_FAILED,
    MAX_RESPONSE_BYTES,
    encode_answer,
    parse_frame,
)

LAYOUT = JailLayout(
    ro_binds=("/usr",),
    symlinks=(),
    devices=("/dev/null",),
    interpreters=(
        Interpreter(language="python", path="/usr/bin/python3", args=("-I", "-S")),
        Interpreter(language="bash", path="/usr/bin/bash"),
    ),
    env=(("HOME", "/workspace"), ("LANG", "C.UTF-8"), ("PATH", "/usr/bin:/bin")),
    mounts=(("logs", "/var/log/app"), ("etc", "/srv/etc")),
)
CHANNEL = ToolChannel(
    socket="/run/r1/tools.sock",
    module="/run/r1/tools.py",
    bin_dir="/run/r1/bin",
    pycache="/run/r1/__pycache__",
)


def argv(**overrides: object) -> list[str]:
    options: dict[str, object] = dict(
        nsjail="/x/nsjail",
        limits=Limits(),
        layout=LAYOUT,
        language="python",
        code_file="/run/r1/code.py",
        workspace_dir=None,
        log_file="/run/r1/nsjail.log",
        cgroups=CgroupSetup(kind="none", reason="test"),
    )
    options.update(overrides)
    return build_argv(**options)  # type: ignore[arg-type]


def pairs(args: list[str], name: str) -> list[str]:
    head = args[: args.index("--")]
    return [head[i + 1] for i, arg in enumerate(head) if arg == name]


# -- argv ---------------------------------------------------------------------------------------


def test_without_tools_or_mounts_the_argv_is_todays() -> None:
    assert argv(tools=None, mounts=()) == argv()
    assert argv()[-4:] == ["/usr/bin/python3", "-I", "-S", "/opsloop/code"]
    assert not any("/mnt/" in a or "tools" in a for a in argv())


def test_tools_add_the_socket_and_the_client_read_only_under_opsloop() -> None:
    binds = pairs(argv(tools=CHANNEL), "--bindmount_ro")
    assert binds[-4:] == [
        "/run/r1/tools.py:/opsloop/tools.py",
        "/run/r1/__pycache__:/opsloop/__pycache__",
        "/run/r1/bin:/opsloop/bin",
        "/run/r1/tools.sock:/opsloop/tools.sock",
    ]
    assert "--bindmount" not in [a for a in argv(tools=CHANNEL) if "tools" in a]


def test_tools_put_opsloop_bin_first_on_path_and_keep_python_isolated_but_for_its_script_dir() -> (
    None
):
    args = argv(tools=CHANNEL)
    assert "PATH=/opsloop/bin:/usr/bin:/bin" in pairs(args, "--env")
    assert args[-5:] == ["/usr/bin/python3", "-E", "-s", "-S", "/opsloop/code"]
    bash = argv(tools=CHANNEL, language="bash")
    assert bash[-2:] == ["/usr/bin/bash", "/opsloop/code"]


def test_each_named_mount_is_a_read_only_bind_at_mnt_name() -> None:
    args = argv(mounts=(("logs", "/var/log/app"),))
    assert "/var/log/app:/mnt/logs" in pairs(args, "--bindmount_ro")
    assert not any("/var/log/app" in a for a in pairs(args, "--bindmount"))


@pytest.mark.parametrize(
    ("given_args", "expected"),
    [
        (("-I", "-S"), ("-E", "-s", "-S")),
        (("-IS",), ("-E", "-s", "-S")),
        (("-I",), ("-E", "-s")),
        (("-P", "-S", "-X", "importtime"), ("-S", "-X", "importtime")),
        (("-W", "error", "-W", "ignore"), ("-W", "error", "-W", "ignore")),
        ((), ()),
    ],
)
def test_python_flags_with_tools_drop_only_what_hides_the_scripts_directory(
    given_args: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert python_args_with_tools(given_args) == expected


def test_the_environment_changes_only_path_and_only_with_tools() -> None:
    env = [("A", "1"), ("PATH", "/p")]
    assert jail_env(env, tools=False) == env
    assert jail_env(env, tools=True) == [("A", "1"), ("PATH", f"{TOOLS_BIN}:/p")]


# -- frames -------------------------------------------------------------------------------------


@given(st.binary(max_size=200))
def test_any_request_line_is_a_json_object_or_refused_never_an_exception(line: bytes) -> None:
    frame = parse_frame(line)
    assert frame is None or isinstance(frame, dict)


@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=5))
def test_a_json_object_comes_through_unchanged(value: dict[str, object]) -> None:
    assert parse_frame(json.dumps(value).encode()) == value


@pytest.mark.parametrize(
    "line", [b"[1]", b'"s"', b"NaN", b'{"a": NaN}', b'{"a": -Infinity}', b"[" * 100_000, b"\xff"]
)
def test_lines_that_are_not_a_json_object_are_refused(line: bytes) -> None:
    assert parse_frame(line) is None


def test_an_answer_is_one_line_of_utf8_json_or_replaced() -> None:
    assert (
        encode_answer({"ok": True, "result": "a\nb é"})
        == '{"ok":true,"result":"a\\nb é"}\n'.encode()
    )
    assert encode_answer({"ok": True, "result": "\udcff"}) == b'{"ok":true,"result":"\\udcff"}\n'
    assert json.loads(encode_answer(["not", "an", "object"])) == BROKER_FAILED
    assert json.loads(encode_answer({"x": float("nan")})) == BROKER_FAILED
    assert json.loads(encode_answer({"x": object()})) == BROKER_FAILED
    huge = {"ok": True, "result": "x" * MAX_RESPONSE_BYTES}
    assert json.loads(encode_answer(huge)) == ANSWER_TOO_LARGE


# -- mounts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("logs", True),
        ("_x9", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("../../etc", False),
        ("/etc", False),
        ("a-b", False),
        ("é", False),
        ("9lives", False),
        ("", False),
        (None, False),
    ],
)
def test_a_mount_name_is_a_simple_ascii_identifier(name: object, ok: bool) -> None:
    assert valid_name(name) is ok


def test_requested_mounts_come_from_the_sandboxs_table_by_name_only() -> None:
    table = {"logs": "/var/log/app", "etc": "/srv/etc"}
    assert requested(table, names=["etc", "logs", "etc"]) == (
        ("etc", "/srv/etc"),
        ("logs", "/var/log/app"),
    )
    assert requested(table, names=[]) == ()
    with pytest.raises(BadRequest, match="unknown mount 'nope'.*etc, logs"):
        requested(table, names=["nope"])
    with pytest.raises(BadRequest, match="invalid mount name '/var/log/app'"):
        requested(table, names=["/var/log/app"])
    with pytest.raises(BadRequest, match="at most"):
        requested(table, names=["logs"] * (MAX_MOUNTS + 1))
    with pytest.raises(BadRequest, match="list of names"):
        requested(table, names="logs")


def test_mounts_below_a_path_are_read_from_mountinfo_with_its_escapes() -> None:
    table = "\n".join(
        [
            "22 1 8:1 / / rw - ext4 /dev/sda1 rw",
            r"30 22 0:40 / /var/log/app/old\040logs rw - tmpfs none rw",
            "31 22 0:41 / /var/log/app2 rw - tmpfs none rw",
            "32 22 0:42 / /var/log/app rw - tmpfs none rw",
        ]
    )
    assert mounts_below("/var/log/app", mountinfo=table) == ["/var/log/app/old logs"]
    assert mounts_below("/var/log/app/", mountinfo=table) == ["/var/log/app/old logs"]
    assert mounts_below("/srv", mountinfo=table) == []
