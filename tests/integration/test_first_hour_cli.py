"""A newcomer's first hour, with the real console script in a fresh directory: the demo's
printed next steps run as printed, a first question with no model configured fails at once,
and the CLI's error cases are one sentence each.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_real

BIN = Path(sys.executable).parent
OPSLOOP = BIN / "opsloop"
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"  # a new shell: the virtualenv is not active


@pytest.fixture(scope="module")
def jails_work() -> None:
    from sandbox.check import diagnose_sync

    require_real(diagnose_sync().jails_work, "nsjail cannot run blocks on this host")


def fresh_env(home: Path, **extra: str) -> dict[str, str]:
    """A newcomer's environment: nothing of opsloop's set, opsloop not on PATH."""
    keep = ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(PATH=BARE_PATH, XDG_DATA_HOME=str(home / "xdg"), OPSLOOP_DATA_DIR=str(home / "data"))
    env.update(extra)
    return env


def run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(OPSLOOP), *args],
        cwd=home,
        env=fresh_env(home, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
    return done.stderr


def test_every_command_the_demo_prints_works_as_printed(
    jail_reachable_dir: Path, jails_work: None
) -> None:
    home = jail_reachable_dir
    demo = run(home, "demo")  # piped, as in CI or `scripts/demo | tee`
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr
    hints = demo.stdout[demo.stdout.index("Next, in this shell:") :].splitlines()[1:]
    commands = [line for line in hints if line.startswith("  ")]
    assert commands[0].split("#")[0].strip() == f"source {BIN / 'activate'}"
    assert all(" # " in line for line in commands)  # each a whole line, never wrapped
    cid = re.search(r"opsloop replay ([0-9a-f]{8})", demo.stdout).group(1)  # type: ignore[union-attr]
    script = "set -e\n" + "\n".join(commands) + "\n"
    script = script.replace("--model demo", "--model demo < question.txt")
    (home / "question.txt").write_text("Which service failed most?\n")

    shell = subprocess.run(
        ["bash", "-c", script],
        cwd=home,
        env=fresh_env(home),
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert shell.returncode == 0, shell.stdout[-3000:] + shell.stderr
    out = shell.stdout
    assert "Which service logged the most errors" in out  # the replay of the demo
    assert "chain intact" in out or "intact" in out  # audit verify of it
    assert cid in out  # the demo's conversation is in `opsloop conversations`
    assert "model scripted:demo" in out  # the chat's banner names its model
    assert out.count("logged the most errors") >= 2  # the replayed answer and the chat's own


def test_the_first_question_without_a_model_fails_at_once_and_records_nothing(
    tmp_path: Path,
) -> None:
    done = run(tmp_path, "ask", "is the disk full?")
    message = one_line_error(done)
    assert "no model is configured" in message
    assert "--provider scripted --model demo" in message and "opsloop demo" in message
    listed = run(tmp_path, "conversations")
    assert listed.returncode == 0 and listed.stdout.strip() == "no conversations"


def test_opening_and_closing_chat_records_no_conversation(tmp_path: Path) -> None:
    for args in (("chat",), ("chat", "--new")):
        done = subprocess.run(
            [str(OPSLOOP), *args, "--provider", "scripted", "--model", "demo"],
            cwd=tmp_path,
            env=fresh_env(tmp_path),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "model scripted:demo" in done.stdout
    assert run(tmp_path, "conversations").stdout.strip() == "no conversations"


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    done = run(tmp_path, "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"opsloop {version('opsloop')}"


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("conversations", "--platform", "irc"), {}, "unknown platform 'irc'"),
        (("conversations",), {"OLLAMA_HOST": "notaurl"}, "OLLAMA_HOST"),
        (("audit", "verify"), {}, "give a conversation id (or a prefix of one), or --all"),
        (("--log-format", "xml", "conversations"), {}, "unknown log format"),
        (
            ("conversations",),
            {"OPSLOOP_DATABASE_URL": "sqlite:////nonexistent-dir/typo/events.db"},
            "--create",
        ),
        (
            ("serve", "slack"),
            {"SLACK_BOT_TOKEN": "xapp-1-A", "SLACK_APP_TOKEN": "xoxb-1-B"},
            "swapped",
        ),
    ],
)
def test_mistakes_are_one_sentence_each(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    # SLACK_API_URL names a closed port: a network call would be a different error
    done = run(tmp_path, *args, SLACK_API_URL="http://127.0.0.1:9/api/", **env)
    assert expected in one_line_error(done)


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    done = run(tmp_path, "conversations", OPSLOOP_DATABASE_URL=f"sqlite:///{notes}")
    assert "is not a SQLite database" in one_line_error(done)
    assert notes.read_text() == "my notes\n"


@pytest.mark.parametrize(("content", "expected"), [(None, "is a directory"), (b"\xff", "UTF-8")])
def test_a_config_that_is_a_directory_or_not_utf8_is_one_sentence(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    config = tmp_path / "opsloop.toml"
    if content is None:
        config.mkdir()
    else:
        config.write_bytes(content)
    done = run(tmp_path, "ask", "--provider", "scripted", "--model", "demo", "hi")
    assert expected in one_line_error(done)


def test_a_full_disk_at_open_is_one_sentence(tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    require_real(unshare is not None, "unshare(1) is not installed")
    full = tmp_path / "full"
    full.mkdir()
    script = (
        f"mount -t tmpfs -o size=16k none {full} && "
        f"(head -c 65536 /dev/zero > {full}/filler 2>/dev/null || true) && "
        f'exec "$@"'
    )
    env = fresh_env(tmp_path, OPSLOOP_DATABASE_URL=f"sqlite:///{full}/events.db")
    done = subprocess.run(
        [str(unshare), "-rm", "sh", "-c", script, "sh", str(OPSLOOP), "conversations"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    require_real("mount" not in done.stderr[:200], f"cannot mount a tmpfs: {done.stderr[:200]}")
    assert "disk is full" in one_line_error(done)


def test_with_log_format_json_every_log_line_of_serve_is_a_json_object(tmp_path: Path) -> None:
    import json

    done = run(
        tmp_path,
        "--log-format",
        "json",
        "serve",
        "slack",
        SLACK_BOT_TOKEN="xoxb-1",
        SLACK_APP_TOKEN="xapp-1",
        OPSLOOP_PROVIDER="scripted",
        OPSLOOP_MODEL="demo",
        SLACK_API_URL="http://127.0.0.1:9/api/",  # closed: the retries log, then it gives up
    )
    *logged, last = done.stderr.strip().splitlines()
    assert done.returncode == 2 and last.startswith("opsloop: cannot reach Slack")
    entries = [json.loads(line) for line in logged]
    assert entries and all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert "token` will be unused" not in done.stderr  # bolt's noise is dropped


def test_ask_with_create_starts_a_new_private_store_where_asked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new/dir/events.db"
    args = ("ask", "--create", "--provider", "scripted", "--model", "demo", "hi")
    done = run(tmp_path, *args, OPSLOOP_DATABASE_URL=url, OPSLOOP_SANDBOX="unsafe-local")
    assert (tmp_path / "new/dir/events.db").stat().st_mode & 0o777 == 0o600, done.stderr


def test_the_readmes_sample_session_is_what_the_built_in_model_answers(
    jail_reachable_dir: Path, jails_work: None
) -> None:
    import shlex

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    session = readme.split("## A session", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    first, _, rest = session.partition("\n")
    expected = rest.split("\n$ ", 1)[0].strip()
    words = shlex.split(first.removeprefix("$ "))
    assert words[:2] == ["opsloop", "ask"] and "demo" in words

    done = run(jail_reachable_dir, *words[1:])

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected
