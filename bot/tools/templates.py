"""Templates of tool declarations: ``{param}`` placeholders and ``${env:VAR}`` references.

Pure functions. A parameter only ever becomes a *whole* value: one argv item, one JSON value
of a body, or one percent-encoded piece of a URL's path or query, so a value can never add an
argument, change a request's host or path structure, or be read by a shell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(text: str) -> list[str]:
    """Names of the ``{param}`` placeholders in ``text``, in order."""
    return PLACEHOLDER.findall(text)


def whole_placeholder(text: str) -> str | None:
    """The parameter's name when ``text`` is exactly one placeholder, else None."""
    match = PLACEHOLDER.fullmatch(text)
    return match.group(1) if match else None


def env_problem(text: str) -> str | None:
    """Why a ``${...}`` in ``text`` is not a well-formed ``${env:VAR}`` reference, if it is not."""
    rest = ENV_REF.sub("", text)
    if "${" in rest:
        return "write a secret as ${env:VAR} (VAR: letters, digits and _)"
    return None


def env_names(text: str) -> list[str]:
    """Names of the environment variables ``text`` refers to."""
    return ENV_REF.findall(text)


def resolve_env(text: str, *, environ: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """``text`` with every ``${env:VAR}`` replaced, and the values used (VAR -> value).

    Raises ``KeyError`` with the first missing variable's name.
    """
    used: dict[str, str] = {}

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise KeyError(name)
        used[name] = environ[name]
        return environ[name]

    return ENV_REF.sub(value, text), used


def as_text(value: object) -> str:
    """A parameter's value as one argv item or URL piece (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def fill_argv(template: tuple[str, ...], arguments: Mapping[str, object]) -> list[str]:
    """The argv: an item that is exactly ``{name}`` becomes that argument, whole."""
    argv = []
    for item in template:
        name = whole_placeholder(item)
        argv.append(item if name is None else as_text(arguments[name]))
    return argv


def url_problem(template: str) -> str | None:
    """Why ``template`` is not a usable http(s) URL template, if it is not."""
    parts = urlsplit(template)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http:// or https:// URL"
    if placeholders(parts.netloc) or placeholders(parts.scheme):
        return "a {placeholder} may only be in the path or the query, never in the host"
    if placeholders(parts.fragment):
        return "a {placeholder} may only be in the path or the query"
    return None


def fill_url(template: str, arguments: Mapping[str, object]) -> str:
    """The URL: path pieces encoded with ``quote(safe="")``, query pieces with ``quote_plus``."""
    parts = urlsplit(template)

    def encoder(function: Any) -> Any:
        return lambda m: function(as_text(arguments[m.group(1)]), safe="")

    path = PLACEHOLDER.sub(encoder(quote), parts.path)
    query = PLACEHOLDER.sub(encoder(quote_plus), parts.query)
    url = urlunsplit((parts.scheme, parts.netloc, path, query, parts.fragment))
    if urlsplit(url).netloc != parts.netloc:  # cannot happen: every piece was encoded
        raise ValueError("a parameter changed the URL's host")
    return url


def body_placeholders(template: object) -> list[str]:
    """Placeholder names anywhere in a JSON body template."""
    if isinstance(template, str):
        return placeholders(template)
    if isinstance(template, dict):
        return [n for k, v in template.items() for n in placeholders(k) + body_placeholders(v)]
    if isinstance(template, list):
        return [n for item in template for n in body_placeholders(item)]
    return []


def body_problem(template: object) -> str | None:
    """Why a JSON body template is unusable: a placeholder that is not a whole value."""
    if isinstance(template, str):
        if placeholders(template) and whole_placeholder(template) is None:
            return f'{template!r}: a {{placeholder}} must be a whole JSON value, e.g. "{{x}}"'
        return None
    if isinstance(template, dict):
        for key, value in template.items():
            if placeholders(key):
                return f"{key!r}: a key cannot be a {{placeholder}}"
            if problem := body_problem(value):
                return problem
    if isinstance(template, list):
        for item in template:
            if problem := body_problem(item):
                return problem
    return None


def fill_body(template: object, arguments: Mapping[str, object]) -> object:
    """The JSON body: a string that is exactly ``{name}`` becomes the typed argument."""
    if isinstance(template, str):
        name = whole_placeholder(template)
        return template if name is None else arguments[name]
    if isinstance(template, dict):
        return {key: fill_body(value, arguments) for key, value in template.items()}
    if isinstance(template, list):
        return [fill_body(item, arguments) for item in template]
    return template
