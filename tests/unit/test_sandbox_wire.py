"""The sandbox service's wire format: requests parse to BadRequest or run arguments; results
are encoded as UTF-8 JSON in bounded pieces, without escape amplification."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.errors import BadRequest
from sandbox.limits import Limits
from sandbox.result import RunResult
from sandbox.wire import (
    PIECE_CHARS,
    gathered,
    json_bytes,
    object_pieces,
    parse_run_request,
    result_chunks,
)

SERVICE = Limits(wall_seconds=5, memory_mb=128)


def result(stdout: str, stderr: str = "") -> dict[str, object]:
    return RunResult(
        exit_code=0, signal=None, stdout=stdout, stderr=stderr, duration_ms=1
    ).to_dict()


def test_invalid_output_is_sent_as_three_utf8_bytes_per_character_not_a_six_byte_escape() -> None:
    body = b"".join(object_pieces(result("\ufffd" * 100_000)))
    assert len(body) < 3 * 100_000 + 300
    assert json.loads(body)["stdout"] == "\ufffd" * 100_000


def test_no_piece_of_a_long_output_is_larger_than_six_bytes_a_character() -> None:
    pieces = list(object_pieces(result("\x00" * 200_000, stderr="\U0001f600" * 50_000)))
    assert max(len(piece) for piece in pieces) <= 6 * PIECE_CHARS
    assert len(pieces) > 200_000 // PIECE_CHARS


# Low surrogates only: a high one followed by a low one is read back as one astral
# character, a property of JSON's \u escapes (json.dumps does the same).
@given(st.text(), st.text(alphabet=st.characters(min_codepoint=0xDC00, max_codepoint=0xDFFF)))
def test_any_output_survives_the_trip_and_the_body_is_valid_utf8(
    text: str, surrogates: str
) -> None:
    fields = result(text * 3 + surrogates, stderr=surrogates + text)
    body = b"".join(gathered(object_pieces(fields), size=1000))
    assert json.loads(body.decode("utf-8")) == fields


def test_pieces_are_gathered_into_writes_of_about_the_given_size() -> None:
    chunks = list(gathered(iter([b"a" * 300] * 10), size=1000))
    assert [len(c) for c in chunks] == [1200, 1200, 600]


def test_a_string_with_lone_surrogates_falls_back_to_escapes() -> None:
    assert json_bytes("é\udcff") == b'"\\u00e9\\udcff"'
    assert json_bytes("é") == '"é"'.encode()


def test_a_valid_request_becomes_run_arguments_under_the_services_limits() -> None:
    raw = json.dumps({"language": "bash", "code": "ls", "workspace": "w1"}).encode()
    assert parse_run_request(raw, limits=SERVICE) == {
        "language": "bash",
        "code": "ls",
        "limits": SERVICE,
        "workspace": "w1",
    }


def test_warm_is_passed_on_only_when_a_request_turns_warm_kernels_off() -> None:
    def parse(**fields: object) -> dict[str, object]:
        body = {"language": "python", "code": "1", "workspace": "w1", **fields}
        return parse_run_request(json.dumps(body).encode(), limits=SERVICE)

    assert "warm" not in parse() and "warm" not in parse(warm=True)
    assert parse(warm=False)["warm"] is False
    with pytest.raises(BadRequest, match="warm must be true or false"):
        parse(warm="no")


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000,
        b'{"a":' * 100_000,
        b"\xff",
        b'{"language": "python", "code": "1", "limits": {"tasks": 1e400}}',
        b'{"language": "python", "code": "1", "limits": {"tasks": 1' + b"0" * 5000 + b"}}",
    ],
)
def test_hostile_bodies_are_bad_requests(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_run_request(raw, limits=SERVICE)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
limit_names = st.sampled_from(sorted(Limits().to_dict()))
requests = st.fixed_dictionaries(
    {},
    optional={
        "language": st.sampled_from(["python", "bash"]) | json_values,
        "code": st.text() | json_values,
        "limits": st.dictionaries(limit_names, json_values) | json_values,
        "workspace": json_values,
        "warm": json_values,
        "unknown": json_values,
    },
)


@given(st.binary(max_size=300) | requests.map(lambda value: json.dumps(value).encode()))
def test_any_body_is_either_run_arguments_or_a_bad_request(raw: bytes) -> None:
    try:
        parsed = parse_run_request(raw, limits=SERVICE)
    except BadRequest:
        return
    assert parsed["limits"].over(SERVICE) is None


@given(st.text(), st.text(alphabet=st.characters(min_codepoint=0xDC00, max_codepoint=0xDFFF)))
def test_a_result_is_sent_whole_when_short_and_reads_back_the_same_either_way(
    text: str, surrogates: str
) -> None:
    fields = result(text + surrogates, stderr=text)
    chunks = list(result_chunks(fields))
    assert json.loads(b"".join(chunks).decode("utf-8")) == fields
    short = 2 * len(text) + len(surrogates) <= PIECE_CHARS
    if short:
        assert len(chunks) == 1


def test_a_long_result_is_still_sent_in_pieces() -> None:
    fields = result("x" * (3 * PIECE_CHARS), stderr="y" * PIECE_CHARS)
    assert b"".join(result_chunks(fields)) == b"".join(gathered(object_pieces(fields)))
