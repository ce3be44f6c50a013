"""``domain.runaway``: the repetition detector and the guard that cuts a streaming reply."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.helpers import first_block_end, parse_helpers
from domain.runaway import REPEAT_SPAN, ReplyGuard, repeats

PIECES = st.sampled_from(
    [
        "<helpers>",
        "</helpers>",
        '<helpers lang="bash">',
        '"',
        "'",
        "#",
        "\n",
        " ",
        "`",
        "<",
        ">",
        "print(1)",
        "</helpers",
        "x",
        "Result of block t1b1: exit status 0\n",
    ]
)


def fed(guard: ReplyGuard, chunks: list[str]) -> str:
    kept = []
    for chunk in chunks:
        kept.append(guard.feed(chunk))
        if guard.done:
            break
    return "".join(kept)


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:], strict=False)]


@given(unit=st.text(min_size=1, max_size=60), prefix=st.text(max_size=300))
def test_a_reply_looping_on_any_span_is_caught_once_its_tail_recurs_three_times(
    unit: str, prefix: str
) -> None:
    copies = -(-(REPEAT_SPAN + 2 * len(unit)) // len(unit))
    assert repeats(prefix + unit * copies)


@given(n=st.integers(0, 3000))
def test_a_reply_that_never_repeats_a_span_is_left_alone(n: int) -> None:
    counting = "".join(f"{i}, " for i in range(n))
    assert not repeats(counting)


def test_a_tail_seen_only_twice_is_not_yet_a_repetition() -> None:
    paragraph = "".join(f"line {i}\n" for i in range(40))  # > 200 characters
    assert not repeats("intro\n" + paragraph * 2)
    assert repeats("intro\n" + paragraph * 3)


@settings(max_examples=300)
@given(pieces=st.lists(PIECES, max_size=30), cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_the_guard_keeps_exactly_the_reply_up_to_its_first_closed_block_however_it_streams(
    pieces: list[str], cuts: list[int]
) -> None:
    reply = "".join(pieces)
    guard = ReplyGuard(span=10**6)  # repetition off: this is about the block cut
    kept = fed(guard, split(reply, cuts))
    end = first_block_end(reply)
    if end is None:
        assert kept == reply and not guard.done
    else:
        assert kept == reply[:end] == guard.text
        assert guard.block_closed and guard.truncated is None
        # whatever arrived after the cut is counted, never kept
        assert guard.discarded <= len(reply) - end
        assert parse_helpers(kept).blocks == parse_helpers(reply[:end]).blocks


def test_an_invented_result_after_a_block_is_discarded_and_only_its_length_kept() -> None:
    block = "Let me compute.\n<helpers>\nprint(2**100)\n</helpers>\n"
    invented = "Result of block t1b1 (python): exit status 0.\n--- stdout ---\n42\n" * 3
    guard = ReplyGuard()
    kept = "".join(guard.feed(chunk) for chunk in (block[:20], block[20:], invented))
    assert kept == block.rstrip("\n")
    assert guard.discarded == len(invented) + 1  # the newline after the tag, then the rest
    assert guard.done


def test_a_paragraph_repeated_while_streaming_is_cut_as_repetition() -> None:
    paragraph = "[INST] <<SYS>> You are a helpful assistant. The answer is below. [/INST]\n"
    guard = ReplyGuard()
    chunks = [word + " " for word in (paragraph * 40).split(" ")]
    kept = fed(guard, chunks)
    assert guard.truncated == "repetition" and guard.done
    assert len(kept) < len(paragraph) * 6  # stopped soon after the third occurrence


def test_a_stream_ending_right_after_its_block_is_read_to_its_end_for_the_usage() -> None:
    guard = ReplyGuard()
    guard.feed("<helpers>\nprint(1)\n</helpers>")
    guard.feed("\n")
    assert guard.done and not guard.close_now  # the finish and usage chunks still come
    guard.feed("Result of block")
    assert guard.close_now
