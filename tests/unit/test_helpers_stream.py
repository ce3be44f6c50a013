"""The streamed prose of a reply: ``domain.helpers.ProseStream`` leaves blocks out by the same
rules as ``parse_helpers``, however the reply is cut into chunks."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from domain.helpers import ProseStream, parse_helpers

REPLY = 'Let me look.\n<helpers lang="bash">\ndf -h\n</helpers>\nThen I will answer.'


def shown(chunks: list[str]) -> str:
    stream = ProseStream()
    return "".join(stream.feed(c) for c in chunks) + stream.flush()


def cut(text: str, points: list[int]) -> list[str]:
    marks = sorted({p for p in points if 0 < p < len(text)})
    return [text[a:b] for a, b in zip([0, *marks], [*marks, len(text)], strict=True)]


def test_blocks_are_left_out_and_the_prose_kept() -> None:
    assert shown([REPLY]) == "Let me look.\nThen I will answer."


def test_tags_split_across_chunks_are_still_tags() -> None:
    assert shown(list(REPLY)) == "Let me look.\nThen I will answer."


def test_nothing_inside_a_block_is_released_before_the_block_closes() -> None:
    stream = ProseStream()
    assert stream.feed('Look:\n<helpers lang="bash">\necho se') == "Look:\n"
    assert stream.feed("cret\n") == ""
    assert stream.feed("</helpers>\nDone.") == "Done."


def test_a_closing_tag_inside_a_quoted_string_does_not_end_the_block() -> None:
    reply = 'A.\n<helpers>\nprint("</helpers>")\n</helpers>\nB.'
    assert shown(list(reply)) == "A.\nB."
    assert parse_helpers(reply).blocks[0].code == 'print("</helpers>")'


def test_a_quoted_tag_in_backticks_is_prose() -> None:
    assert shown(list("Write `<helpers>` blocks.")) == "Write `<helpers>` blocks."


def test_an_uppercase_tag_with_attributes_is_a_tag() -> None:
    assert shown(["Go.\n<HELPERS LANG='sh'>\nls\n</HELPERS>\nok"]) == "Go.\nok"


def test_an_unclosed_block_is_prose_after_all_as_the_parser_says() -> None:
    reply = "Try:\n<helpers>\nprint(1)\n"
    assert shown(list(reply)) == reply
    assert parse_helpers(reply).unclosed


def test_a_lone_angle_bracket_is_not_held_back_forever() -> None:
    stream = ProseStream()
    assert stream.feed("a < b and c") == "a < b and c"
    assert shown(["a < b and <helpers is only a word"]) == "a < b and <helpers is only a word"


@given(st.text(alphabet=st.characters(blacklist_characters="<"), max_size=200))
def test_prose_without_tags_is_released_unchanged(text: str) -> None:
    assert shown([text]) == text


words = st.text(alphabet="abcdefgh ,.\n'\"", min_size=1, max_size=20)
blocks = st.builds(
    lambda lang, body: f"<helpers{lang}>\nCODE{body}\n</helpers>\n",
    st.sampled_from(["", ' lang="bash"', " lang=python", " LANG='sh'"]),
    st.text(alphabet="xyz0123 =()", max_size=12),
)
replies = st.lists(st.one_of(words, blocks), max_size=6).map("".join)


@given(reply=replies, points=st.lists(st.integers(min_value=0, max_value=200), max_size=10))
def test_where_chunks_are_cut_never_changes_what_is_released(reply: str, points: list[int]) -> None:
    assert shown(cut(reply, points)) == shown([reply])


@given(reply=replies)
def test_the_stream_shows_the_prose_the_parser_finds_and_no_code(reply: str) -> None:
    streamed = shown(list(reply))
    parsed = parse_helpers(reply)
    assert "CODE" not in streamed or parsed.unclosed
    if not parsed.unclosed:
        squash = lambda text: re.sub(r"\s+", "", text)  # noqa: E731
        assert squash(streamed) == squash(parsed.text)
