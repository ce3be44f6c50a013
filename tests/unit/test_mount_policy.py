"""``[sandbox] mounts`` in opsloop.toml, and the one pure decision of which mounts a caller's
blocks get (``bot.policy.mounts``): the same rule as for tools."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import MountDecl, Policy, SandboxPolicy, load_policy
from bot.errors import ConfigError
from bot.policy.mounts import allowed, mounts_for
from bot.tools.access import refusal
from bot.tools.config import ToolDecl
from bot.tools.values import Caller

ids = st.sampled_from(["U1", "U2", "C1", "C2", ""])
qualified = st.sampled_from(
    ["U1", "slack:U1", "discord:U1", "U2", "C1", "slack:C1", "C2", "role:oncall", "admin"]
)
roles = st.sampled_from(["oncall", "admin", "dev"])
decls = st.builds(
    MountDecl,
    path=st.just("/var/log/app"),
    allow_users=st.lists(qualified, max_size=3),
    allow_channels=st.lists(qualified, max_size=3),
    allow_roles=st.lists(roles, max_size=2),
)
callers = st.builds(
    Caller,
    platform=st.sampled_from(["slack", "discord", "terminal"]),
    user=ids,
    channel=ids,
    roles=st.frozensets(roles, max_size=2),
    operator=st.booleans(),
)
names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@given(decls, callers)
def test_a_mount_is_allowed_exactly_when_a_tool_with_the_same_lists_would_be(
    decl: MountDecl, caller: Caller
) -> None:
    tool = ToolDecl(
        kind="command",
        argv=["true"],
        allow_users=decl.allow_users,
        allow_channels=decl.allow_channels,
        allow_roles=decl.allow_roles,
    )
    assert allowed(decl, caller=caller) == (refusal("t", tool, caller, per_block=False) is None)


@given(st.dictionaries(names, decls, max_size=5), callers)
def test_a_caller_gets_some_of_the_configured_names_in_their_order(
    mounts: dict[str, MountDecl], caller: Caller
) -> None:
    chosen = mounts_for(SandboxPolicy(mounts=mounts), caller=caller)
    assert list(chosen) == [name for name in mounts if name in chosen]
    assert all(allowed(mounts[name], caller=caller) for name in chosen)


@given(st.dictionaries(names, st.just(MountDecl(path="/srv")), max_size=5), callers)
def test_mounts_without_lists_are_everyones_on_the_surface(
    mounts: dict[str, MountDecl], caller: Caller
) -> None:
    assert mounts_for(SandboxPolicy(mounts=mounts), caller=caller) == tuple(mounts)


def test_a_listed_user_or_role_in_a_listed_channel_gets_it_and_others_do_not() -> None:
    decl = MountDecl(
        path="/srv", allow_users=["slack:U1"], allow_roles=["oncall"], allow_channels=["C1"]
    )
    assert allowed(decl, caller=Caller(platform="slack", user="U1", channel="C1"))
    oncall = Caller(platform="slack", user="U9", channel="C1", roles=frozenset({"oncall"}))
    assert allowed(decl, caller=oncall)
    assert not allowed(decl, caller=Caller(platform="discord", user="U1", channel="C1"))
    assert not allowed(decl, caller=Caller(platform="slack", user="U1", channel="C2"))
    assert not allowed(decl, caller=Caller(platform="slack", user="U1", channel=""))


def test_both_forms_of_mounts_load_from_opsloop_toml(tmp_path: Path) -> None:
    config = tmp_path / "opsloop.toml"
    config.write_text(
        '[sandbox.mounts]\nlogs = "/var/log/app"\n'
        '[sandbox.mounts.runbooks]\npath = "/srv/runbooks"\nallow_channels = ["C1"]\n'
    )
    mounts = load_policy(config).sandbox.mounts
    assert mounts == {
        "logs": MountDecl(path="/var/log/app"),
        "runbooks": MountDecl(path="/srv/runbooks", allow_channels=["C1"]),
    }


def test_a_role_a_mount_names_must_exist_in_roles(tmp_path: Path) -> None:
    config = tmp_path / "opsloop.toml"
    config.write_text(
        '[roles]\noncall = ["slack:U1"]\n'
        '[sandbox.mounts.logs]\npath = "/var/log"\nallow_users = ["role:oncall"]\n'
        '[sandbox.mounts.db]\npath = "/srv/db"\nallow_roles = ["dba"]\n'
    )
    with pytest.raises(ConfigError, match="sandbox.mounts.db.allow_roles: 'dba': no such role"):
        load_policy(config)
    config.write_text(config.read_text().replace('"dba"', '"oncall"'))
    policy = load_policy(config)
    oncall = Caller(platform="slack", user="U1", roles=frozenset({"oncall"}))
    assert mounts_for(policy.sandbox, caller=oncall) == ("logs", "db")
    assert mounts_for(policy.sandbox, caller=Caller(platform="slack", user="U2")) == ()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('"../../etc" = "/etc"', "sandbox.mounts: '../../etc' is not a simple identifier"),
        ('"a-b" = "/etc"', "'a-b' is not a simple identifier"),
        ('logs = "var/log"', "sandbox.mounts.logs.path: must be an absolute path without '..'"),
        ('logs = "/var/log/../../etc"', "must be an absolute path without '..'"),
        ("logs = { path = '/x', writable = true }", "sandbox.mounts.logs.writable"),
    ],
)
def test_a_bad_mount_is_a_one_line_startup_error_naming_the_key(
    tmp_path: Path, toml: str, message: str
) -> None:
    config = tmp_path / "opsloop.toml"
    config.write_text(f"[sandbox.mounts]\n{toml}\n")
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("'", "'")):
        load_policy(config)


def test_no_mounts_by_default() -> None:
    assert Policy().sandbox.mounts == {}
    assert tomllib.loads("[sandbox]\nmounts = {}\n")["sandbox"]["mounts"] == {}
