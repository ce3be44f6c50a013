"""Templates: a parameter is always one whole value, and never changes a URL's structure."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from bot.tools import templates

values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "../../etc/passwd",
            "a/b?c=d#e",
            "x&admin=1",
            "@evil.example",
            "//evil.example/x",
            "%2e%2e",
        ]
    ),
)


@given(value=values)
def test_a_path_value_stays_one_segment_and_the_host_never_changes(value: str) -> None:
    url = templates.fill_url(
        "https://status.example.com/v1/services/{name}/status", {"name": value}
    )
    parts = urlsplit(url)
    assert parts.netloc == "status.example.com"
    assert (parts.query, parts.fragment) == ("", "")
    segments = parts.path.split("/")
    assert segments[:3] == ["", "v1", "services"] and segments[4:] == ["status"]
    assert unquote(segments[3]) == value


@given(first=values, second=values)
def test_query_values_never_add_parameters(first: str, second: str) -> None:
    url = templates.fill_url(
        "http://h.example:8080/search?q={q}&by={by}#top", {"q": first, "by": second}
    )
    parts = urlsplit(url)
    assert (parts.netloc, parts.path, parts.fragment) == ("h.example:8080", "/search", "top")
    pairs = [pair.split("=", 1) for pair in parts.query.split("&")]
    assert [key for key, _ in pairs] == ["q", "by"]
    assert [unquote_plus(v) for _, v in pairs] == [first, second]
    assert parse_qs(parts.query, keep_blank_values=True) == {
        k: [v] for k, v in (("q", first), ("by", second))
    }


def test_a_url_template_with_a_placeholder_in_the_host_is_refused() -> None:
    assert templates.url_problem("https://{host}/x") is not None
    assert templates.url_problem("https://u:{p}@h/x") is not None
    assert templates.url_problem("https://h/x/{y}?z={w}") is None


@given(value=st.text(max_size=20))
def test_an_argv_placeholder_becomes_exactly_one_item(value: str) -> None:
    argv = templates.fill_argv(("ls", "-l", "--", "{path}", "{path}"), {"path": value})
    assert argv == ["ls", "-l", "--", value, value]


def test_booleans_become_true_and_false_in_argv_and_urls() -> None:
    assert templates.fill_argv(("x", "{v}"), {"v": True}) == ["x", "true"]
    assert templates.fill_url("http://h/?v={v}", {"v": False}) == "http://h/?v=false"


def test_a_body_placeholder_keeps_the_type_of_its_value() -> None:
    body = {"service": "{service}", "limit": "{limit}", "dry": "{dry}", "tags": ["{service}", "x"]}
    filled = templates.fill_body(body, {"service": "api", "limit": 3, "dry": True})
    assert filled == {"service": "api", "limit": 3, "dry": True, "tags": ["api", "x"]}


def test_env_references_resolve_and_name_a_missing_variable() -> None:
    text, used = templates.resolve_env("Bearer ${env:TOKEN}", environ={"TOKEN": "abc"})
    assert (text, used) == ("Bearer abc", {"TOKEN": "abc"})
    try:
        templates.resolve_env("${env:NOPE}", environ={})
    except KeyError as missing:
        assert missing.args == ("NOPE",)
    assert templates.env_problem("${TOKEN}") is not None
    assert templates.env_problem("x ${env:TOKEN} y") is None
