"""A sandbox service's configured limits are both the defaults and the maxima of a request."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.errors import BadRequest
from sandbox.limits import MIB, Limits, merge_requested

SERVICE = Limits(wall_seconds=5, memory_mb=128, tasks=32, output_bytes=4 * MIB)

limits = st.builds(
    Limits,
    wall_seconds=st.floats(0.1, 3600),
    cpu_seconds=st.none() | st.floats(0.1, 3600),
    memory_mb=st.integers(16, 65536),
    tasks=st.integers(1, 4096),
    file_size_mb=st.integers(1, 4096),
    open_files=st.integers(16, 65536),
    tmpfs_mb=st.integers(1, 4096),
    output_bytes=st.integers(1024, 256 * MIB),
)
# Whatever a JSON body can carry as a limit's value, and then some.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.just(10**400),  # too large for a float
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)
names = st.sampled_from(sorted(Limits().to_dict()) + ["memory", ""])


@pytest.mark.parametrize("requested", [None, {}])
def test_a_request_without_limits_gets_the_services_configured_limits(requested) -> None:  # type: ignore[no-untyped-def]
    assert merge_requested(requested, defaults=SERVICE) == SERVICE


def test_fields_a_request_omits_take_the_services_values() -> None:
    merged = merge_requested({"wall_seconds": 2, "memory_mb": 64}, defaults=SERVICE)
    assert merged == SERVICE.replaced(wall_seconds=2, memory_mb=64)


@pytest.mark.parametrize(
    ("field", "value", "maximum"),
    [("wall_seconds", 3600, "5"), ("memory_mb", 65536, "128"), ("tasks", 4096, "32")],
)
def test_a_limit_over_the_services_maximum_is_a_bad_request_naming_it(
    field: str, value: float, maximum: str
) -> None:
    with pytest.raises(BadRequest, match=f"{field}={value} is over .* maximum of {maximum}$"):
        merge_requested({field: value}, defaults=SERVICE)


def test_an_unset_cpu_limit_is_checked_as_the_wall_limit_it_stands_for() -> None:
    service = SERVICE.replaced(cpu_seconds=2)
    with pytest.raises(BadRequest, match="cpu_seconds=5"):
        merge_requested({"cpu_seconds": None}, defaults=service)
    assert (
        merge_requested({"wall_seconds": 2, "cpu_seconds": None}, defaults=service).cpu_limit == 2
    )


@pytest.mark.parametrize(
    "text",
    ['{"memory_mb": 1e400}', '{"tasks": NaN}', '{"tasks": true}', '{"tasks": 1' + "0" * 4000 + "}"],
)
def test_numbers_json_can_spell_but_limits_cannot_hold_are_bad_requests(text: str) -> None:
    with pytest.raises(BadRequest, match="limit"):
        merge_requested(json.loads(text), defaults=SERVICE)


@given(limits, limits)
def test_a_full_request_is_granted_exactly_or_refused_when_over_a_maximum(
    asked: Limits, service: Limits
) -> None:
    over = asked.over(service)
    if over is None:
        assert merge_requested(asked.to_dict(), defaults=service) == asked
    else:
        with pytest.raises(BadRequest, match=f"limit {over[0]}="):
            merge_requested(asked.to_dict(), defaults=service)


@given(limits, st.dictionaries(names, json_values, max_size=4))
def test_whatever_a_request_asks_it_never_gets_more_than_the_service_allows(
    service: Limits, asked: dict[str, object]
) -> None:
    try:
        merged = merge_requested(asked, defaults=service)
    except BadRequest:
        return
    assert merged.over(service) is None
    for name, value in merged.to_dict().items():
        assert value == asked.get(name, getattr(service, name))
        assert value is None or math.isfinite(value)
