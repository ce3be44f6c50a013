"""Every command logs one way: text or JSON lines on stderr, without the libraries' noise."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator

import pytest

from bot.cli import logsetup
from bot.errors import ConfigError


@pytest.fixture
def root_handlers() -> Iterator[None]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    root.handlers[:] = saved
    root.setLevel(level)
    logging.captureWarnings(False)


def test_json_lines_carry_time_level_logger_and_message(
    root_handlers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logsetup.configure("json", level=logging.INFO)
    logging.getLogger("logsetup.test").warning("started \x1b[2J on %s", "slack")
    entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert entry["level"] == "WARNING" and entry["logger"] == "logsetup.test"
    assert entry["message"] == "started \x1b[2J on slack" and entry["time"].endswith("+00:00")


def test_text_lines_are_one_line_per_record_with_controls_shown(
    root_handlers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logsetup.configure("text", level=logging.INFO)
    logging.getLogger("opsloop.test").warning("bad \x1b]52;c;x\x07 title")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert " WARNING opsloop.test: bad " in line and "\x1b" not in line


def test_configuring_twice_keeps_one_handler(root_handlers: None) -> None:
    logsetup.configure("text")
    logsetup.configure("json")
    ours = [h for h in logging.getLogger().handlers if h.get_name() == logsetup.HANDLER]
    assert len(ours) == 1 and isinstance(ours[0].formatter, logsetup.JsonFormatter)


def test_an_unknown_log_format_is_one_sentence() -> None:
    with pytest.raises(ConfigError, match="text or json"):
        logsetup.configure("xml")


@pytest.mark.parametrize(("logger", "message", "_why"), logsetup.QUIET)
def test_library_noise_that_means_nothing_to_an_operator_is_dropped(
    root_handlers: None,
    capsys: pytest.CaptureFixture[str],
    logger: str,
    message: str,
    _why: str,
) -> None:
    logsetup.configure("text", level=logging.INFO)
    logging.getLogger(logger).warning(message + " (and the rest)")
    logging.getLogger(logger).warning("something else went wrong")
    err = capsys.readouterr().err
    assert message not in err and "something else went wrong" in err


def test_warnings_go_through_the_same_handler_and_audioop_is_silent(
    root_handlers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logsetup.configure("json")
    warnings.warn("'audioop' is deprecated and slated for removal", DeprecationWarning, 2)
    warnings.warn("a real problem", UserWarning, 2)
    err = capsys.readouterr().err
    assert "audioop" not in err
    assert json.loads(err.strip().splitlines()[-1])["logger"] == "py.warnings"
