"""Splitting text into Discord messages: the limit, fences, and wide characters."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.discord.chunking import DISCORD_LIMIT, safe_cut, split_message


def _balanced(piece: str) -> bool:
    """True when no fence is left open (CommonMark: only a bare ``` line closes one)."""
    inside = False
    for line in piece.split("\n"):
        stripped = line.strip()
        if not inside and stripped.startswith("```"):
            inside = True
        elif inside and stripped and set(stripped) == {"`"}:
            inside = False
    return not inside


def test_exactly_2000_characters_is_one_message() -> None:
    text = "a" * 2000
    assert split_message(text) == [text]


def test_2001_characters_are_two_messages_that_rejoin_to_the_text() -> None:
    text = "a" * 2001
    pieces = split_message(text)
    assert [len(p) for p in pieces] == [2000, 1]
    assert "".join(pieces) == text


def test_exactly_2000_characters_over_several_lines_stays_one_message() -> None:
    text = "\n".join(["x" * 99] * 20)  # 20*99 + 19 newlines = 1999
    text += "y"
    assert len(text) == 2000
    assert split_message(text) == [text]


def test_a_fence_crossing_the_limit_is_closed_and_reopened_with_its_language() -> None:
    body = "\n".join(f"print({i})  # a line of python" for i in range(120))
    text = f"Here is the code:\n```python\n{body}\n```\nand that is all."
    pieces = split_message(text)
    assert len(pieces) == 2
    assert all(len(p) <= DISCORD_LIMIT for p in pieces)
    assert pieces[0].endswith("\n```")
    assert pieces[1].startswith("```python\n")
    assert pieces[1].endswith("```\nand that is all.")
    assert all(_balanced(p) for p in pieces)
    code_lines = [ln for p in pieces for ln in p.splitlines() if ln.startswith("print(")]
    assert code_lines == body.splitlines()


def test_a_fence_is_not_left_open_on_its_opening_line_at_the_end_of_a_message() -> None:
    text = "x" * 1990 + "\n```bash\nls -la\n```"
    pieces = split_message(text)
    assert pieces == ["x" * 1990, "```bash\nls -la\n```"]


def test_a_single_line_longer_than_the_limit_inside_a_fence_is_cut_and_refenced() -> None:
    text = "```\n" + "z" * 5000 + "\n```"
    pieces = split_message(text)
    assert all(len(p) <= DISCORD_LIMIT for p in pieces)
    assert all(p.startswith("```\n") and p.endswith("\n```") for p in pieces)
    assert "".join(p[4:-4] for p in pieces) == "z" * 5000


def test_emoji_with_skin_tones_are_never_cut_in_half() -> None:
    thumb = "\N{THUMBS UP SIGN}\N{EMOJI MODIFIER FITZPATRICK TYPE-4}"
    text = "a" + thumb * 1500  # an odd offset puts the limit inside an emoji
    pieces = split_message(text)
    assert "".join(pieces) == text
    assert all(len(p) <= DISCORD_LIMIT for p in pieces)
    assert all(p.lstrip("a").startswith("\N{THUMBS UP SIGN}") for p in pieces)


def test_zwj_families_flags_and_accents_stay_whole() -> None:
    family = "\N{MAN}\u200d\N{WOMAN}\u200d\N{GIRL}"  # 5 code points, one glyph
    flag = "\N{REGIONAL INDICATOR SYMBOL LETTER F}\N{REGIONAL INDICATOR SYMBOL LETTER R}"
    accent = "e\N{COMBINING ACUTE ACCENT}"
    for unit in (family, flag, accent):
        for offset in range(len(unit)):
            text = "b" * offset + unit * 900
            pieces = split_message(text)
            assert "".join(pieces) == text
            for piece in pieces[1:]:
                assert piece.startswith(unit), (unit, offset)


def test_wide_cjk_text_counts_code_points_not_bytes() -> None:
    text = "漢" * 2000  # 6,000 bytes of UTF-8, but 2,000 characters for Discord
    assert split_message(text) == [text]


def test_cuts_prefer_a_space_to_the_middle_of_a_word() -> None:
    text = ("word " * 500).strip()
    pieces = split_message(text)
    assert all(not p.startswith("ord") for p in pieces)
    assert " ".join(p.strip() for p in pieces) == text


def test_safe_cut_returns_the_whole_text_when_it_fits() -> None:
    assert safe_cut("short", 10) == 5


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(["a", " ", "\n", "\n```", "\n```py", "é", "👍🏽", "漢", "x" * 400]),
        max_size=400,
    )
)
def test_any_text_splits_into_pieces_within_the_limit_with_balanced_fences(
    parts: list[str],
) -> None:
    text = "".join(parts)
    pieces = split_message(text, limit=300)
    assert all(len(p) <= 300 for p in pieces)
    assert all(_balanced(p) for p in pieces)
    assert all(p.strip() for p in pieces)
