"""The helper-block parser: the protocol's examples, its edge cases, and its properties."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.helpers import (
    HelperBlock,
    ParsedReply,
    format_block,
    normalise_language,
    parse_helpers,
)


def codes(reply: str) -> list[tuple[str, str]]:
    return [(block.language, block.code) for block in parse_helpers(reply).blocks]


# -- the protocol ------------------------------------------------------------------------


def test_a_bare_block_is_python_and_the_prose_around_it_is_the_text() -> None:
    parsed = parse_helpers("Let me look.\n<helpers>\nprint(1)\n</helpers>\nBack soon.")
    assert parsed == ParsedReply(
        blocks=(HelperBlock(index=1, language="python", code="print(1)"),),
        text="Let me look.\n\nBack soon.",
        problems=(),
    )


def test_the_design_example_gives_two_blocks_in_order() -> None:
    reply = (
        '<helpers>\nimport shutil; print(shutil.disk_usage("/"))\n</helpers>\n'
        '<helpers lang="bash">\nls -la /workspace\n</helpers>\n'
    )
    parsed = parse_helpers(reply)
    assert [(b.index, b.language, b.code) for b in parsed.blocks] == [
        (1, "python", 'import shutil; print(shutil.disk_usage("/"))'),
        (2, "bash", "ls -la /workspace"),
    ]
    assert parsed.text == ""


def test_lang_may_be_double_quoted_single_quoted_or_bare() -> None:
    for tag in (
        '<helpers lang="bash">',
        "<helpers lang='bash'>",
        "<helpers lang=bash>",
        '<helpers  lang = "bash" >',
        '<HELPERS LANG="BASH">',
    ):
        assert codes(f"{tag}\nls\n</helpers>") == [("bash", "ls")], tag


def test_language_aliases_are_normalised_and_unknown_ones_kept_as_written() -> None:
    assert [normalise_language(name) for name in ("py", "Python3", "python", "sh", "shell")] == [
        "python",
        "python",
        "python",
        "bash",
        "bash",
    ]
    assert codes('<helpers lang="Ruby">\nputs 1\n</helpers>') == [("Ruby", "puts 1")]


def test_other_attributes_are_ignored() -> None:
    assert codes('<helpers timeout="5" lang="sh">\nuptime\n</helpers>') == [("bash", "uptime")]


def test_a_one_line_block_with_prose_after_it_on_the_same_line() -> None:
    parsed = parse_helpers("Checking<helpers>print(2)</helpers>then more")
    assert codes("Checking<helpers>print(2)</helpers>then more") == [("python", "print(2)")]
    assert parsed.text == "Checking\n\nthen more"


# -- fenced code -------------------------------------------------------------------------


def test_a_fence_inside_a_block_is_stripped_and_its_language_used() -> None:
    assert codes("<helpers>\n```bash\ndf -h\n```\n</helpers>") == [("bash", "df -h")]
    assert codes("<helpers>\n```\nprint(3)\n```\n</helpers>") == [("python", "print(3)")]


def test_the_lang_attribute_wins_over_the_fence() -> None:
    reply = '<helpers lang="bash">\n```python\necho hi\n```\n</helpers>'
    assert codes(reply) == [("bash", "echo hi")]


def test_blocks_wrapped_in_a_markdown_fence_leave_no_empty_fence_in_the_text() -> None:
    parsed = parse_helpers("Here:\n```xml\n<helpers>\nprint(4)\n</helpers>\n```\nDone.")
    assert [b.code for b in parsed.blocks] == ["print(4)"]
    assert parsed.text == "Here:\n\nDone."


def test_an_indented_block_is_dedented_so_python_accepts_it() -> None:
    assert codes("<helpers>\n    for i in range(2):\n        print(i)\n</helpers>") == [
        ("python", "for i in range(2):\n    print(i)")
    ]


# -- the closing rule --------------------------------------------------------------------


def test_a_closing_tag_inside_a_string_literal_does_not_close_the_block() -> None:
    reply = "<helpers>\nprint(\"</helpers>\")\nprint('x </helpers>')\n</helpers>\nok"
    assert codes(reply) == [("python", "print(\"</helpers>\")\nprint('x </helpers>')")]
    assert parse_helpers(reply).text == "ok"


def test_escaped_quotes_do_not_end_the_string_early() -> None:
    reply = '<helpers>\nprint("say \\"</helpers>\\" twice")\n</helpers>'
    assert codes(reply) == [("python", 'print("say \\"</helpers>\\" twice")')]


def test_a_closing_tag_after_a_comment_closes_even_with_an_apostrophe_in_it() -> None:
    assert codes("<helpers>\nprint(1)  # don't </helpers>\nafter") == [
        ("python", "print(1)  # don't")
    ]


def test_in_bash_a_backslash_does_not_escape_inside_single_quotes() -> None:
    assert codes("<helpers lang=bash>\necho 'a\\' </helpers>") == [("bash", "echo 'a\\'")]


def test_a_closing_tag_at_the_start_of_a_line_always_closes() -> None:
    # the documented limit of the rule: a triple-quoted string cannot hide it
    parsed = parse_helpers('<helpers>\ns = """\n</helpers>\n"""\n</helpers>')
    assert [b.code for b in parsed.blocks] == ['s = """']
    assert any("outside any block" in problem for problem in parsed.problems)


# -- problems ----------------------------------------------------------------------------


def test_an_unclosed_block_becomes_text_and_a_problem() -> None:
    parsed = parse_helpers("Let me check.\n<helpers>\nprint(1)\n")
    assert parsed.blocks == ()
    assert parsed.unclosed
    assert parsed.text == "Let me check.\n<helpers>\nprint(1)"
    assert len(parsed.problems) == 1
    assert "line 2" in parsed.problems[0] and "never closed" in parsed.problems[0]


def test_blocks_before_an_unclosed_one_still_run() -> None:
    parsed = parse_helpers('<helpers>\na = 1\n</helpers>\n<helpers>\nprint("</helpers>")')
    assert [b.code for b in parsed.blocks] == ["a = 1"]
    assert parsed.unclosed
    assert "inside a quoted string" in parsed.problems[0]


def test_a_tag_quoted_in_backticks_is_prose() -> None:
    parsed = parse_helpers("I write `<helpers>` blocks and end them with `</helpers>`.")
    assert parsed == ParsedReply(
        blocks=(), text="I write `<helpers>` blocks and end them with `</helpers>`.", problems=()
    )


def test_an_empty_block_is_ignored_and_reported() -> None:
    parsed = parse_helpers("Hmm <helpers>\n\n</helpers> ok")
    assert parsed.blocks == ()
    assert parsed.text == "Hmm\n\nok"
    assert "empty" in parsed.problems[0]


def test_an_empty_reply_is_a_problem() -> None:
    parsed = parse_helpers("  \n")
    assert parsed.text == "" and parsed.problems and not parsed.unclosed


def test_a_plain_answer_has_no_blocks_and_no_problems() -> None:
    assert parse_helpers("  The disk is full because of /var/log.  ") == ParsedReply(
        blocks=(), text="The disk is full because of /var/log.", problems=()
    )


def test_tag_lookalikes_are_not_tags() -> None:
    assert parse_helpers("<helpersfoo>x</helpersfoo> <helper>y</helper>").blocks == ()
    assert parse_helpers("Use <helpers and then x > y").blocks == ()


def test_attributes_may_span_lines() -> None:
    assert codes('<helpers\n  lang="bash"\n>\nls\n</helpers>') == [("bash", "ls")]


def test_a_forgotten_closing_tag_before_a_new_block_is_reported() -> None:
    parsed = parse_helpers("<helpers>\na = 1\n<helpers lang=bash>\nls\n</helpers>")
    assert [b.code for b in parsed.blocks] == ["a = 1\n<helpers lang=bash>\nls"]
    assert "did you forget a </helpers>" in parsed.problems[0]


def test_many_quoted_tags_on_one_line_are_all_skipped() -> None:
    line = 'x = "</helpers>" + \'</helpers>\' + "\\"</helpers>"  # </helpers>'
    parsed = parse_helpers(f"<helpers>\n{line}\nprint(x)\n</helpers>")
    assert [b.code for b in parsed.blocks] == [line.split("  # ")[0] + "  #"]


# -- properties --------------------------------------------------------------------------

TAGGY = st.sampled_from(
    [
        "<helpers>",
        "</helpers>",
        '<helpers lang="bash">',
        "<helpers lang=",
        "```",
        "```py\n",
        '"',
        "'",
        "\\",
        "#",
        "\n",
        " ",
        "`",
        "<",
        ">",
        "print(",
        ")",
        "</helpers",
        "<HELPERS >",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(TAGGY, st.text(max_size=8)), max_size=40).map("".join))
def test_it_never_raises_and_blocks_are_numbered_from_one(reply: str) -> None:
    parsed = parse_helpers(reply)
    assert [b.index for b in parsed.blocks] == list(range(1, len(parsed.blocks) + 1))
    assert all(b.code.strip() for b in parsed.blocks)
    assert parsed.unclosed == any("never closed" in p for p in parsed.problems)


PROSE = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="<`"), max_size=30
) | st.sampled_from(["a < b and c > d", "x<y", "see `ls`", ""])
CODE_LINE = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + " =+-*/()[]{}:.,'\"\\#$<>", max_size=20)
    .filter(lambda line: not line[:1].isspace() and not line.startswith(("```", "~~~")))
    .filter(lambda line: "helpers" not in line.lower()),
    st.sampled_from(['print("</helpers>")', "echo '</helpers>'", 'x = "<helpers>"', ""]),
)
CODE = (
    st.lists(CODE_LINE, min_size=1, max_size=6)
    .map(lambda lines: "\n".join(lines).strip("\n").rstrip())
    .filter(lambda code: bool(code.strip()) and not code[:1].isspace())
)
LANGUAGE = st.sampled_from(["python", "bash"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(PROSE, LANGUAGE, CODE), max_size=4), PROSE)
def test_generated_blocks_round_trip_and_the_outside_text_is_preserved(
    parts: list[tuple[str, str, str]], tail: str
) -> None:
    # Block lines that leave a quote open must not swallow the next line's closing tag:
    # format_block puts the tag on its own line, where the quote scan starts afresh.
    reply = "".join(
        prose + "\n" + format_block(language=lang, code=code) + "\n" for prose, lang, code in parts
    )
    reply += tail
    parsed = parse_helpers(reply)
    expected = [(lang, code) for _, lang, code in parts]
    assert [(b.language, b.code) for b in parsed.blocks] == expected
    prose_pieces = [prose for prose, _, _ in parts] + [tail]
    assert parsed.text == "\n\n".join(p.strip() for p in prose_pieces if p.strip())
    assert not parsed.unclosed


@settings(deadline=None)  # no timing in unit tests: the machine is shared
@given(PROSE)
def test_text_without_tags_is_returned_trimmed_and_unchanged(prose: str) -> None:
    parsed = parse_helpers(prose)
    assert parsed.blocks == () and parsed.text == prose.strip()
