"""Limits, results and request validation: values that cross the port and the event log."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.errors import BadRequest
from sandbox.limits import MIB, Limits
from sandbox.request import MAX_CODE_BYTES, check_request, check_workspace
from sandbox.result import RunResult


def test_the_defaults_are_the_issues_defaults() -> None:
    limits = Limits()
    assert (limits.wall_seconds, limits.memory_mb, limits.tasks) == (10.0, 256, 64)
    assert (limits.file_size_mb, limits.output_bytes) == (16, MIB)
    assert limits.cpu_limit == 10.0  # CPU defaults to the wall limit


def test_limits_survive_a_round_trip_through_json() -> None:
    limits = Limits(wall_seconds=2.5, cpu_seconds=1, memory_mb=64, tasks=8, output_bytes=4096)
    assert Limits.from_dict(json.loads(json.dumps(limits.to_dict()))) == limits


@pytest.mark.parametrize(
    "changes",
    [
        {"wall_seconds": 0},
        {"wall_seconds": -1},
        {"wall_seconds": float("nan")},
        {"wall_seconds": float("inf")},
        {"memory_mb": 1},
        {"memory_mb": 10**9},
        {"memory_mb": 1.5},
        {"tasks": 0},
        {"output_bytes": 10},
        {"tasks": True},
        {"memory_mb": "256"},
    ],
)
def test_limits_out_of_range_are_a_bad_request(changes: dict[str, object]) -> None:
    with pytest.raises(BadRequest, match="limit"):
        Limits(**changes)  # type: ignore[arg-type]


def test_an_unknown_limit_is_a_bad_request_naming_it() -> None:
    with pytest.raises(BadRequest, match="'memory'"):
        Limits.from_dict({"memory": 64})


def test_results_survive_a_round_trip_and_ignore_unknown_fields() -> None:
    result = RunResult(
        exit_code=None,
        signal=9,
        stdout="a",
        stderr="b",
        duration_ms=3,
        timed_out=True,
        cpu_ms=None,
        unsafe_local=True,
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert RunResult.from_dict({**data, "added_later": 1}) == result
    assert set(data) == {
        "exit_code",
        "signal",
        "stdout",
        "stderr",
        "duration_ms",
        "timed_out",
        "memory_exceeded",
        "output_truncated",
        "cpu_ms",
        "unsafe_local",
        "kernel",  # added with the warm kernels: fields are added, never renamed
    }


def test_a_result_without_its_required_fields_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        RunResult.from_dict({"stdout": ""})


@pytest.mark.parametrize("code", ["", "   \n\t"])
def test_empty_code_is_a_bad_request(code: str) -> None:
    with pytest.raises(BadRequest, match="empty"):
        check_request(language="python", code=code)


def test_an_unknown_language_is_a_bad_request_listing_the_known_ones() -> None:
    with pytest.raises(BadRequest, match="python, bash"):
        check_request(language="ruby", code="puts 1")


def test_code_over_the_size_limit_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="over the limit"):
        check_request(language="bash", code="x" * (MAX_CODE_BYTES + 1))
    assert check_request(language="bash", code="x" * MAX_CODE_BYTES) == b"x" * MAX_CODE_BYTES


def test_nul_bytes_and_lone_surrogates_in_code_are_kept_as_bytes() -> None:
    assert check_request(language="python", code="a\x00b\ud800") == b"a\x00b\xed\xa0\x80"


def test_undecodable_bytes_of_a_file_go_to_the_jail_unchanged() -> None:
    raw = b"print('\xff\xfe')"
    code = raw.decode("utf-8", errors="surrogateescape")
    assert check_request(language="python", code=code) == raw


@pytest.mark.parametrize("name", ["conv-1", "0f1e2d3c-aaaa-bbbb-cccc-123456789abc", "a.b_c"])
def test_conversation_ids_are_valid_workspace_names(name: str) -> None:
    assert check_workspace(name) == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x", "a/b", "/abs", "a\x00", ".hidden", "a..b", "x" * 129, "é"]
)
def test_workspace_names_that_could_escape_are_refused(name: str) -> None:
    with pytest.raises(BadRequest, match="workspace"):
        check_workspace(name)


@given(st.text(max_size=200))
def test_a_valid_workspace_name_is_always_a_single_plain_path_component(name: str) -> None:
    try:
        check_workspace(name)
    except BadRequest:
        return
    assert "/" not in name and "\x00" not in name and name not in {".", ".."}
    assert not name.startswith(".") and ".." not in name
