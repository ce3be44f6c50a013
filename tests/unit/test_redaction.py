"""Redaction: known secrets in every encoding, credential shapes, and the streaming redactor."""

from __future__ import annotations

import base64
import dataclasses
import re
import string
from urllib.parse import quote, quote_plus

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from domain.redaction import (
    MIN_SECRET_CHARS,
    Redacted,
    Redaction,
    Redactor,
    encoded_forms,
    joined,
    redact,
)

SECRET = "hunter2-Sesame/Open?"
B64_RUN = re.compile(r"[A-Za-z0-9+/=_\-]+")

secret_values = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="["), min_size=MIN_SECRET_CHARS
).filter(lambda v: len(re.sub(r"\s", "", v)) >= MIN_SECRET_CHARS)
noise = st.text(alphabet=string.printable, max_size=40)


def encodings(value: str) -> list[str]:
    raw = value.encode()
    b64 = base64.b64encode(raw).decode()
    url64 = base64.urlsafe_b64encode(raw).decode()
    return [
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        raw.hex(),
        raw.hex().upper(),
        b64,
        b64.rstrip("="),
        url64,
        url64.rstrip("="),
    ]


def base64_reveals(text: str, secret: bytes) -> bool:
    """Whether any run of base64 characters in ``text`` decodes to bytes holding ``secret``."""
    for run in B64_RUN.findall(text):
        for start in range(4):
            chunk = run[start:].rstrip("=")
            chunk = chunk[: len(chunk) - len(chunk) % 4]
            for altchars in (b"+/", b"-_"):
                try:
                    decoded = base64.b64decode(chunk, altchars=altchars)
                except ValueError:
                    continue
                if secret in decoded:
                    return True
    return False


# -- known secrets -----------------------------------------------------------------------


@settings(max_examples=300)
@given(value=secret_values, before=noise, after=noise, form=st.integers(0, 9))
@example(value="hunter2", before="", after="", form=0)
def test_a_known_secret_never_survives_in_any_encoding_or_position(
    value: str, before: str, after: str, form: int
) -> None:
    text = before + encodings(value)[form] + after
    result = redact(text, secrets={"PW": value})
    assert value not in result.text
    for encoded in encodings(value):
        assert encoded not in result.text
    assert "PW" in result.names


@settings(max_examples=300)
@given(
    value=secret_values,
    prefix=st.binary(max_size=7),
    suffix=st.binary(max_size=7),
    urlsafe=st.booleans(),
)
def test_a_secret_inside_a_longer_base64_stream_is_caught_at_every_alignment(
    value: str, prefix: bytes, suffix: bytes, urlsafe: bool
) -> None:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    text = "data: " + encode(prefix + value.encode() + suffix).decode() + " end"
    result = redact(text, secrets={"PW": value})
    assert not base64_reveals(result.text, value.encode())
    assert result.names == ("PW",)


def test_the_base64_forms_cover_the_three_alignments_of_a_secret() -> None:
    forms = [text for form, text in encoded_forms("abcdefgh") if form == "base64"]
    for offset in range(3):
        stream = base64.b64encode(b"x" * offset + b"abcdefgh" + b"yz").decode()
        assert any(form in stream for form in forms), offset


@given(value=secret_values, text=st.text(alphabet="acdfhijklmnopqstuvwxyz ,.;:!?'\n", max_size=200))
def test_text_without_a_secret_or_a_credential_shape_is_unchanged(value: str, text: str) -> None:
    assume(not any(form in text for _, form in encoded_forms(value)))
    assert redact(text, secrets={"PW": value}) == Redacted(text=text)


def test_ordinary_prose_with_short_env_values_is_left_alone() -> None:
    text = "It is true that the bearer of bad news said: tokens expire. Basic auth is off."
    redactor = Redactor({"DEBUG": "true", "PORT": "8080", "TOKEN": SECRET})
    assert redactor.redact(text) == Redacted(text=text)


def test_values_shorter_than_the_minimum_are_ignored_and_named() -> None:
    redactor = Redactor({"DEBUG": "true", "TOKEN": SECRET})
    assert redactor.ignored == ("DEBUG",)
    assert redactor.redact("DEBUG is true").text == "DEBUG is true"
    assert redactor.names == frozenset({"TOKEN"})


def test_a_redaction_names_the_secret_its_form_and_span_never_the_value() -> None:
    text = f"a {quote(SECRET, safe='')} b {SECRET}"
    result = redact(text, secrets={"TOKEN": SECRET})
    assert result.text == "a [redacted:TOKEN] b [redacted:TOKEN]"
    assert [(r.name, r.form) for r in result.redactions] == [("TOKEN", "url"), ("TOKEN", "plain")]
    assert [text[r.start : r.end] for r in result.redactions] == [quote(SECRET, safe=""), SECRET]
    assert {f.name for f in dataclasses.fields(Redaction)} == {"name", "form", "start", "end"}


def test_json_escaped_and_lower_case_url_escaped_values_are_caught() -> None:
    value = 'pa"ss\\wörd/1'
    for text in ('{"pw": "pa\\"ss\\\\w\\u00f6rd/1"}', quote(value, safe="").lower()):
        assert redact(text, secrets={"PW": value}).text.count("[redacted:PW]") == 1, text


def test_overlapping_secrets_become_one_marker_named_after_the_longer() -> None:
    result = redact("xx abcdefghij yy", secrets={"LONG": "abcdefghij", "SHORT": "defghi"})
    assert result.text == "xx [redacted:LONG] yy"


def test_a_secret_name_must_be_safe_inside_a_marker() -> None:
    try:
        Redactor({"bad]name": SECRET})
    except ValueError as exc:
        assert "bad]name" in str(exc)
    else:
        raise AssertionError("a name with ] was accepted")


# -- credential shapes -------------------------------------------------------------------

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7Mz\n"
    "-----END RSA PRIVATE KEY-----"
)
SHAPES = {
    "slack_token": [
        "xoxb-12345678901-abcdefABCDEF",
        "xoxp-1-2-3-abcdefghijkl",
        "xapp-1-A0B1C2D3E4F5",
    ],
    "github_token": ["ghp_" + "a1B2" * 9, "gho_" + "Z" * 36, "github_pat_11AAAA_" + "b" * 40],
    "aws_access_key_id": ["AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A"],
    "private_key": [PEM, "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA"],
}


def test_credential_shapes_are_redacted_without_being_declared() -> None:
    for name, examples in SHAPES.items():
        for token in examples:
            result = redact(f"found {token} here", secrets={})
            assert token not in result.text, token
            assert f"[redacted:{name}]" in result.text, token


def test_a_bearer_header_keeps_its_scheme_and_loses_its_token() -> None:
    text = "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_n-u+m/=="
    assert redact(text, secrets={}).text == "Authorization: Bearer [redacted:bearer_token]"
    assert redact("bearer abcdefghijklmnop1234", secrets={}).text == (
        "bearer [redacted:bearer_token]"
    )


def test_a_private_key_block_cut_short_is_redacted_to_the_end() -> None:
    text = "key:\n" + PEM[:60]
    assert redact(text, secrets={}).text == "key:\n[redacted:private_key]"


def test_a_certificate_is_not_a_private_key() -> None:
    text = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    assert redact(text, secrets={}).text == text


# -- idempotence and markers -------------------------------------------------------------

pieces = st.one_of(
    noise,
    st.sampled_from([SECRET, quote_plus(SECRET), SECRET.encode().hex(), "[redacted:TOKEN]"]),
    st.sampled_from([t for ts in SHAPES.values() for t in ts] + ["Bearer ", "[redacted:"]),
    st.sampled_from(["-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----"]),
)
texts = st.lists(pieces, max_size=8).map("".join)


@settings(max_examples=300)
@given(text=texts)
def test_redacting_twice_changes_nothing_more(text: str) -> None:
    redactor = Redactor({"TOKEN": SECRET})
    once = redactor.redact(text)
    assert redactor.redact(once.text) == Redacted(text=once.text)


def test_a_marker_only_protects_a_known_name() -> None:
    text = f"[redacted:{SECRET}] [redacted:TOKEN]"
    result = redact(text, secrets={"TOKEN": SECRET})
    assert result.text == "[redacted:[redacted:TOKEN]] [redacted:TOKEN]"


# -- streams -----------------------------------------------------------------------------


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts})
    edges = [0, *points, len(text)]
    return [text[a:b] for a, b in zip(edges, edges[1:], strict=False)]


@settings(max_examples=400)
@given(text=texts, cuts=st.lists(st.integers(0, 400), max_size=12))
def test_a_stream_gives_exactly_the_one_shot_result_for_any_chunking(
    text: str, cuts: list[int]
) -> None:
    redactor = Redactor({"TOKEN": SECRET, "OTHER": "xoxb-not-a-shape?"})
    stream = redactor.stream()
    parts = [stream.feed(chunk) for chunk in chunked(text, cuts)] + [stream.flush()]
    assert joined(parts) == redactor.redact(text)


@settings(max_examples=200)
@given(value=secret_values, before=noise, after=noise, cuts=st.lists(st.integers(0, 200)))
def test_a_secret_split_across_chunks_never_leaks(
    value: str, before: str, after: str, cuts: list[int]
) -> None:
    stream = Redactor({"PW": value}).stream()
    released = ""
    for chunk in chunked(before + value + after, cuts):
        released += stream.feed(chunk).text
        assert value not in released
    released += stream.flush().text
    assert value not in released


def test_a_stream_holds_back_only_a_possible_partial_match() -> None:
    stream = Redactor({"TOKEN": SECRET}).stream()
    assert stream.feed("the disk is full, ").text == "the disk is full, "
    assert stream.held == 0
    assert stream.feed("see hunter2-Ses").text == "see "
    assert stream.held == len("hunter2-Ses")
    assert stream.feed("ame/Open? now").text == "[redacted:TOKEN] "
    assert stream.flush().text == "now"


def test_a_stream_holds_an_unfinished_private_key_until_it_ends() -> None:
    stream = Redactor({}).stream()
    assert stream.feed("key: " + PEM[:50]).text == "key: "
    assert stream.feed(PEM[50:] + "\nok ").text == "[redacted:private_key]\nok "


# -- what a hostile or careless block does with a value ----------------------------------


def squeezed_base64_reveals(text: str, secret: bytes) -> bool:
    """``base64_reveals`` after whitespace is taken out, as a decoder of wrapped base64 does."""
    return base64_reveals(re.sub(r"\s", "", text), secret)


@settings(max_examples=300)
@given(
    value=secret_values,
    form=st.integers(0, 9),
    cut=st.integers(1, 200),
    gap=st.sampled_from(["\n", " ", "\r\n", "\n\n", "\t", "  \n"]),
    before=noise,
    after=noise,
)
def test_a_secret_split_across_two_prints_is_caught_in_every_encoding(
    value: str, form: int, cut: int, gap: str, before: str, after: str
) -> None:
    encoded = encodings(value)[form]
    cut = min(cut, len(encoded) - 1)
    text = before + encoded[:cut] + gap + encoded[cut:] + after
    result = redact(text, secrets={"PW": value})
    squeezed = re.sub(r"\s", "", result.text)
    assert re.sub(r"\s", "", encoded) not in squeezed
    assert "PW" in result.names


@settings(max_examples=200)
@given(value=secret_values, prefix=st.binary(max_size=80), suffix=st.binary(max_size=80))
def test_base64_wrapped_at_76_columns_does_not_reveal_the_secret(
    value: str, prefix: bytes, suffix: bytes
) -> None:
    stream = base64.b64encode(prefix + value.encode() + suffix).decode()
    wrapped = "\n".join(stream[i : i + 76] for i in range(0, len(stream), 76))  # `base64`
    result = redact(wrapped + "\n", secrets={"PW": value})
    assert not squeezed_base64_reveals(result.text, value.encode())


def test_hex_dumps_escapes_and_reversed_values_are_caught() -> None:
    raw = SECRET.encode()
    grouped = " ".join(raw.hex()[i : i + 4] for i in range(0, len(raw) * 2, 4))  # xxd
    spaced = raw.hex(" ")  # hexdump -C, od
    escaped = "".join(f"\\x{b:02x}" for b in raw)  # print(repr(bytes)) of binary data
    every = "".join(f"%{b:02x}" for b in raw)  # every byte percent-encoded
    for text in (grouped, spaced, escaped, every, SECRET[::-1]):
        result = redact(f"out: {text} :end", secrets={"TOKEN": SECRET})
        assert result.text == "out: [redacted:TOKEN] :end", text


def test_an_empty_or_blank_env_value_redacts_nothing() -> None:
    redactor = Redactor({"EMPTY": "", "BLANK": " \n  \t ", "SPACED": "a b c"})
    text = "a b c, abc and spaces:    \n"
    assert redactor.redact(text) == Redacted(text=text)
    assert redactor.ignored == ("BLANK", "EMPTY", "SPACED")
    assert redactor.names == frozenset()


@settings(max_examples=300)
@given(text=st.lists(st.one_of(noise, st.sampled_from([SECRET, "Bearer ", " "])), max_size=30))
def test_redacted_text_is_at_most_a_fixed_factor_longer_than_its_input(text: list[str]) -> None:
    whole = "".join(text)
    redactor = Redactor({"TOKEN": SECRET, "A_RATHER_LONG_SECRET_NAME": "abcdef"})
    out = redactor.redact(whole).text
    factor = redactor.longest_marker / MIN_SECRET_CHARS
    assert len(out) <= max(len(whole), len(whole) * factor)
    assert redactor.redact(out).text == out  # and it does not grow again


def test_json_data_is_redacted_in_keys_and_values_and_names_what_it_took() -> None:
    redactor = Redactor({"TOKEN": SECRET})
    data = {SECRET: [1, {"k": f"x {SECRET} y"}, None], "ok": "fine"}
    value, names = redactor.redact_value(data)
    assert value == {"[redacted:TOKEN]": [1, {"k": "x [redacted:TOKEN] y"}, None], "ok": "fine"}
    assert names == ("TOKEN",)


def test_a_record_says_which_field_holds_which_markers() -> None:
    redactor = Redactor({"TOKEN": SECRET})
    texts, where = redactor.clean(
        stdout=f"{SECRET} and ghp_{'a' * 36}", stderr="nothing", text="[redacted:OTHER]"
    )
    assert texts["stdout"] == "[redacted:TOKEN] and [redacted:github_token]"
    assert where == {"stdout": ["TOKEN", "github_token"]}  # an unknown name is not a marker


split_secret = st.integers(1, len(SECRET) - 1).map(lambda i: SECRET[:i] + "\n" + SECRET[i:])


@settings(max_examples=300)
@given(
    text=st.lists(st.one_of(pieces, split_secret, st.just("\n")), max_size=8).map("".join),
    cuts=st.lists(st.integers(0, 400), max_size=12),
)
def test_a_stream_gives_the_one_shot_result_for_secrets_split_by_whitespace(
    text: str, cuts: list[int]
) -> None:
    redactor = Redactor({"TOKEN": SECRET})
    stream = redactor.stream()
    parts = [stream.feed(chunk) for chunk in chunked(text, cuts)] + [stream.flush()]
    assert joined(parts) == redactor.redact(text)
    assert SECRET not in re.sub(r"\s", "", joined(parts).text)


@settings(max_examples=200)
@given(text=texts)
def test_a_long_text_is_redacted_exactly_like_a_short_one(text: str) -> None:
    redactor = Redactor({"TOKEN": SECRET, "OTHER": "xoxb-not-a-shape?"})
    filler = "," * 600 + "\n"  # past the length where each position is no longer looked up
    assert redactor.redact(filler + text).text == filler + redactor.redact(text).text
