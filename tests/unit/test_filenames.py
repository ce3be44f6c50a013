"""File names from people and from blocks become one safe directory entry (pure)."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from sandbox.filenames import MAX_NAME_BYTES, numbered, safe_name


def test_a_plain_name_is_kept_as_it_is() -> None:
    assert safe_name("app.log") == "app.log"
    assert safe_name("Rapport d'incident (final).pdf") == "Rapport d'incident (final).pdf"


def test_a_path_keeps_only_its_last_part_so_nothing_climbs_out_of_the_inbox() -> None:
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\Users\\bob\\log.txt") == "log.txt"
    assert safe_name("logs/") == "logs"


def test_dot_names_and_names_of_dots_never_stay_hidden_or_special() -> None:
    assert safe_name("..") == "file"
    assert safe_name(".") == "file"
    assert safe_name(".env") == "env"
    assert safe_name("") == "file"


def test_an_option_like_name_cannot_become_an_argument_of_a_shell_command() -> None:
    assert safe_name("-rf") == "rf"
    assert not safe_name("--checkpoint-action=exec=sh x").startswith("-")


def test_nul_newlines_escapes_and_bidi_overrides_are_replaced() -> None:
    assert safe_name("a\x00b.txt") == "a_b.txt"
    assert safe_name("report\n2026.txt") == "report_2026.txt"
    assert safe_name("\x1b[31mred\x1b[0m.log") == "_[31mred_[0m.log"
    assert safe_name("invoice\u202etxt.exe") == "invoice_txt.exe"


def test_bytes_that_were_not_utf8_are_replaced() -> None:
    raw = b"caf\xe9.csv".decode("utf-8", "surrogateescape")
    assert safe_name(raw) == "caf_.csv"


def test_a_name_of_control_characters_only_falls_back_to_a_plain_one_with_its_extension() -> None:
    assert safe_name("\x01\x02.log") == "file.log"


def test_a_long_name_is_cut_to_255_bytes_keeping_its_extension_and_whole_characters() -> None:
    name = safe_name("é" * 300 + ".log")
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert name.endswith(".log") and name.startswith("é")


def test_copies_are_numbered_before_the_extension_and_stay_within_the_limit() -> None:
    names = numbered("app.log")
    assert [next(names) for _ in range(3)] == ["app.log", "app (2).log", "app (3).log"]
    long = numbered("x" * 251 + ".log")
    next(long)
    assert len(next(long).encode("utf-8")) <= MAX_NAME_BYTES


@given(st.text())
def test_any_name_becomes_one_plain_entry(name: str) -> None:
    safe = safe_name(name)
    assert safe and "/" not in safe and safe not in (".", "..")
    assert not safe.startswith((".", "-"))
    assert len(safe.encode("utf-8")) <= MAX_NAME_BYTES
    assert all(unicodedata.category(c) not in ("Cc", "Cf", "Cs") for c in safe)
