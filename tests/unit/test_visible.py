"""``bot.visible``: what a terminal could obey is shown instead (pure, property-tested)."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.visible import VisibleFormatter, visible, visible_json, visible_stderr

C0 = {chr(c) for c in range(0x20)} - {"\n", "\t"}
C1 = {chr(c) for c in range(0x80, 0xA0)}
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
TAGS = {chr(c) for c in range(0xE0000, 0xE0080)}
SURROGATES = {chr(c) for c in range(0xD800, 0xE000)}
UNSAFE = C0 | C1 | BIDI | TAGS | SURROGATES | {"\x7f"}

# Text that leans on the dangerous characters, mixed with ordinary ones.
hostile = st.text(
    alphabet=st.sampled_from(sorted(UNSAFE)) | st.characters(codec="utf-8") | st.just("\n"),
    max_size=80,
)


@given(hostile)
def test_visible_text_never_contains_a_control_character(text: str) -> None:
    assert not set(visible(text)) & UNSAFE


@given(st.text(alphabet=st.characters(blacklist_characters=sorted(UNSAFE)), max_size=200))
def test_text_without_control_characters_is_unchanged(text: str) -> None:
    assert visible(text) == text


@given(hostile)
def test_making_text_visible_twice_changes_nothing_more(text: str) -> None:
    assert visible(visible(text)) == visible(text)


@given(hostile)
def test_newlines_and_tabs_survive_so_lines_stay_lines(text: str) -> None:
    expected = text.replace("\r\n", "\n")
    assert visible(text).count("\n") == expected.count("\n")
    assert visible(text).count("\t") == text.count("\t")


def test_escape_sequences_are_shown_as_control_pictures() -> None:
    assert visible("\x1b[2J\x1b]0;owned\x07") == "␛[2J␛]0;owned␇"
    assert visible("\x1b]52;c;cHduZWQ=\x1b\\") == "␛]52;c;cHduZWQ=␛\\"
    assert visible("nul\x00 bs\x08 del\x7f") == "nul␀ bs␈ del␡"


def test_a_lone_carriage_return_is_shown_but_crlf_is_a_newline() -> None:
    assert visible("rm -rf /\rls -la   ") == "rm -rf /␍ls -la   "
    assert visible("one\r\ntwo\r\n") == "one\ntwo\n"


def test_c1_controls_are_shown_by_their_code() -> None:
    assert visible("\x9b2J\x9d0;t\x9c") == "\\x9b2J\\x9d0;t\\x9c"


def test_bidi_controls_are_shown_by_their_code_point() -> None:
    assert visible("user\u202egnp.exe") == "user<U+202E>gnp.exe"
    assert visible("\u2066x\u2069") == "<U+2066>x<U+2069>"


def test_hidden_tag_characters_and_lone_surrogates_are_shown() -> None:
    assert visible("hi\U000e0041") == "hi<U+E0041>"
    assert visible("x\ud800y") == "x<U+D800>y"


def test_ordinary_unicode_and_emoji_are_left_alone() -> None:
    text = "naïve café — 日本語 ⚠️ 👩‍👩‍👧 «quoted»"
    assert visible(text) == text


@given(st.recursive(st.none() | st.booleans() | st.integers() | hostile, st.lists, max_leaves=8))
def test_visible_json_is_the_same_value_without_control_characters(value: object) -> None:
    for encoded in (json.dumps(value, ensure_ascii=False), json.dumps(value, indent=2)):
        safe = visible_json(encoded)
        assert not set(safe) & UNSAFE - {"\n"}
        assert json.loads(safe) == value


def test_visible_json_escapes_what_json_dumps_leaves_raw() -> None:
    encoded = json.dumps({"out": "\x9b2J\u202e\x7f"}, ensure_ascii=False)
    assert "\x9b" in encoded  # json.dumps alone would let a C1 CSI through
    assert visible_json(encoded) == '{"out": "\\u009b2J\\u202e\\u007f"}'


def test_log_lines_and_their_tracebacks_are_made_visible() -> None:
    try:
        raise RuntimeError("server said \x1b]0;owned\x07")
    except RuntimeError:
        failure = sys.exc_info()
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "got %s", ("\x1b[2J",), failure)
    line = VisibleFormatter("%(message)s").format(record)
    assert "\x1b" not in line and "\x07" not in line
    assert line.startswith("got ␛[2J") and "server said ␛]0;owned␇" in line


def test_the_serve_commands_log_handler_writes_visible_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    handler = visible_stderr("%(levelname)s %(message)s")
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "slack said %s", ("\x9b2J",), None
    )
    handler.handle(record)
    assert capsys.readouterr().err == "WARNING slack said \\x9b2J\n"


def test_once_redaction_is_installed_no_log_line_carries_a_secret() -> None:
    import io
    import logging

    from bot.visible import VisibleFormatter, redact_logs
    from domain.redaction import Redactor

    secret = "sk-live-5f0c9d2a7e1b44c3"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(VisibleFormatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        redact_logs(Redactor({"OPENAI_API_KEY": secret}))
        try:
            raise RuntimeError(f"401 from the provider for key {secret}")
        except RuntimeError:
            logging.getLogger("bot.providers").exception("model call failed with %s", secret)
    finally:
        root.removeHandler(handler)
    written = stream.getvalue()
    assert "model call failed with [redacted:OPENAI_API_KEY]" in written
    assert "for key [redacted:OPENAI_API_KEY]" in written  # the traceback too
    assert secret not in written
