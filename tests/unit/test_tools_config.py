"""``[tools]`` in opsloop.toml: what loads, and the one-line error for each kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_policy
from bot.errors import ConfigError

DISK = '[tools.disk]\nkind = "command"\nargv = ["df", "-h", "--", "{path}"]\n'
PATH_PARAM = '[tools.disk.params.path]\ntype = "string"\ndefault = "/"\n'


def config_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "opsloop.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert "\n" not in message
    return message.replace(str(path), "opsloop.toml")


def test_a_tool_of_each_kind_loads_with_its_defaults(tmp_path: Path) -> None:
    path = tmp_path / "opsloop.toml"
    path.write_text(
        "[tools]\ncalls_per_block = 5\n"
        + DISK
        + PATH_PARAM
        + '[tools.status]\nkind = "http"\nurl = "https://status.example.com/v1/{service}"\n'
        + 'headers = { Authorization = "Bearer ${env:STATUS_TOKEN}" }\n'
        + '[tools.status.params.service]\nenum = ["api", "db"]\n'
        + '[tools.docs]\nkind = "mcp"\nurl = "https://mcp.example.com/mcp"\nexclude = ["w"]\n'
    )
    tools = load_policy(path).tools
    assert tools.calls_per_block == 5
    assert list(tools.declared) == ["disk", "status", "docs"]
    disk = tools.declared["disk"]
    assert (disk.timeout_seconds, disk.max_result_bytes, disk.approve) == (30.0, 65536, "never")
    assert disk.params["path"].default == "/"
    assert tools.declared["status"].params["service"].enum == ["api", "db"]


def test_no_tools_section_means_no_tools_and_twenty_calls_per_block(tmp_path: Path) -> None:
    path = tmp_path / "opsloop.toml"
    path.write_text("[loop]\nturns_per_message = 3\n")
    tools = load_policy(path).tools
    assert (tools.declared, tools.calls_per_block) == ({}, 20)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[tools.disk]\nkind = "command"\nargv = "df -h /"\n',
            "tools.disk.argv: use a list: argv = [...] (no shell is ever used)",
        ),
        (
            '[tools.disk]\nkind = "ssh"\n',
            "tools.disk.kind: unknown kind 'ssh' (kinds: command, http, mcp)",
        ),
        (DISK, "tools.disk.argv: {path} is not a declared parameter"),
        (
            '[tools.disk]\nkind = "command"\nargv = ["df", "--path={path}"]\n' + PATH_PARAM,
            "tools.disk.argv: '--path={path}': a {placeholder} must be a whole argv item",
        ),
        (
            '[tools.disk]\nkind = "command"\nargv = ["{path}"]\n' + PATH_PARAM,
            "tools.disk.argv: argv[0] must be a fixed command, not a {placeholder}",
        ),
        (
            '[tools.disk]\nkind = "command"\nargv = ["df", "${env:TOKEN}"]\n',
            "tools.disk.argv: ${env:VAR} is resolved only in env and headers, not in argv",
        ),
        (
            '[tools.disk]\nkind = "command"\nargv = ["df"]\nurl = "http://h/"\n',
            "tools.disk.url: url is not a key of a command tool",
        ),
        ('[tools.disk]\nkind = "command"\n', "tools.disk: a command tool needs argv = [...]"),
        (
            '[tools.disk]\nkind = "command"\nargv = ["df"]\nenv = { A = "${TOKEN}" }\n',
            "tools.disk.env: A: write a secret as ${env:VAR}",
        ),
        ('[tools.my-disk]\nkind = "command"\nargv = ["df"]\n', "tools: 'my-disk' is not a usable"),
        ('[tools.class]\nkind = "command"\nargv = ["df"]\n', "tools: 'class' is not a usable"),
        ('[tools.list]\nkind = "command"\nargv = ["df"]\n', "tools: 'list' is taken by the tools"),
        ("[tools]\ncalls_per_blok = 3\n", "tools: calls_per_blok is not a key of [tools]"),
        (DISK + "timeout = 3\n" + PATH_PARAM, "tools.disk.timeout: Extra inputs are not permitted"),
        (
            DISK + '[tools.disk.params.path]\ntype = "integer"\ndefault = "/"\n',
            "tools.disk.params.path: '/': must be an integer (got string)",
        ),
        (
            DISK + '[tools.disk.params.path]\ntype = "integer"\npattern = "[0-9]+"\n',
            "tools.disk.params.path: pattern applies to string parameters only",
        ),
        (
            DISK + '[tools.disk.params.path]\npattern = "("\n',
            "tools.disk.params.path: pattern is not a valid regular expression",
        ),
        (
            DISK + '[tools.disk.params.path]\ntype = "number"\nmin = 5\nmax = 1\n',
            "tools.disk.params.path: min is greater than max",
        ),
        (
            DISK + PATH_PARAM + "[tools.disk.params.unused]\n",
            "tools.disk: params.unused is declared but used in no template",
        ),
        (
            '[tools.s]\nkind = "http"\nurl = "http://{host}/v1"\n[tools.s.params.host]\n',
            "tools.s.url: a {placeholder} may only be in the path or the query, never in the host",
        ),
        ('[tools.s]\nkind = "http"\nurl = "status.example.com/v1"\n', "tools.s.url: must be an"),
        (
            '[tools.s]\nkind = "http"\nurl = "http://h/"\nbody = { a = "x-{n}" }\n'
            "[tools.s.params.n]\n",
            "tools.s.body: 'x-{n}': a {placeholder} must be a whole JSON value",
        ),
        (
            '[tools.s]\nkind = "http"\nurl = "http://h/"\nbody = { a = 1 }\n',
            "tools.s: a body needs method = POST, PUT, PATCH or DELETE",
        ),
        (
            '[tools.s]\nkind = "http"\nurl = "http://h/?t=${env:TOKEN}"\n',
            "tools.s.url: ${env:VAR} is resolved only in env and headers, not in url",
        ),
        (
            '[tools.m]\nkind = "mcp"\ncommand = ["srv"]\nurl = "http://h/mcp"\n',
            "tools.m: an mcp tool needs either command = [...] (stdio) or url = ...",
        ),
        ('[tools.m]\nkind = "mcp"\ncommand = "npx srv"\n', "tools.m.command: use a list"),
        (
            '[tools.m]\nkind = "mcp"\ncommand = ["srv"]\n[tools.m.params.x]\n',
            "tools.m.params: an mcp tool takes its parameters from the server's schemas",
        ),
        (
            '[tools.m]\nkind = "mcp"\ncommand = ["srv"]\nargv = ["x"]\n',
            "tools.m.argv: argv is not a key of a mcp tool",
        ),
    ],
)
def test_a_bad_tool_is_a_one_line_error_naming_the_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert config_error(tmp_path, text).startswith("opsloop.toml: " + expected)
