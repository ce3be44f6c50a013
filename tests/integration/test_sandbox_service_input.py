"""The sandbox service trusts no caller: limits, tokens and hostile input, sent raw over TCP.

Each test here is an attack that worked before the service was hardened (issue 9): a 500
with a traceback, a request granted more than the service's limits, a block run without
the token. A fake runner stands behind a real listening service (guard included).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from sandbox.client import SandboxClient
from sandbox.errors import BadRequest
from sandbox.limits import MIB, Limits
from sandbox.service import RunningService, ServiceOptions, start_service
from tests.integration.sandbox_service_helpers import TOKEN, FakeRunner, exchange, post

SERVICE_LIMITS = Limits(wall_seconds=5, memory_mb=128, tasks=32, output_bytes=2 * MIB)


def port_of(service: RunningService) -> int:
    return int(service.url.rsplit(":", 1)[1])


@pytest.fixture
async def runner() -> FakeRunner:
    return FakeRunner()


@pytest.fixture
async def service(runner: FakeRunner) -> AsyncIterator[RunningService]:
    options = ServiceOptions(token=TOKEN, maxima=SERVICE_LIMITS)
    running = await start_service(runner=runner, options=options, port=0)
    yield running
    await running.close()


def run_body(**fields: object) -> bytes:
    return json.dumps({"language": "python", "code": "print(1)", **fields}).encode()


@pytest.mark.parametrize("body", [run_body(), run_body(limits={}), run_body(limits=None)])
async def test_a_request_without_limits_runs_under_the_services_configured_limits(
    service: RunningService, runner: FakeRunner, body: bytes
) -> None:
    status, _ = await exchange(port_of(service), post(body))
    assert status == 200
    assert runner.calls[0]["limits"] == SERVICE_LIMITS


async def test_limits_a_request_omits_are_the_services(
    service: RunningService, runner: FakeRunner
) -> None:
    status, _ = await exchange(port_of(service), post(run_body(limits={"wall_seconds": 1})))
    assert status == 200 and runner.calls[0]["limits"] == SERVICE_LIMITS.replaced(wall_seconds=1)


@pytest.mark.parametrize(
    ("limits", "named"),
    [
        ({"wall_seconds": 3600}, "wall_seconds=3600 is over this service's maximum of 5"),
        ({"memory_mb": 65536}, "memory_mb=65536 is over this service's maximum of 128"),
        ({"tasks": 4096}, "tasks=4096 is over this service's maximum of 32"),
        ({"output_bytes": 256 * MIB}, "output_bytes=268435456 is over"),
        ({"cpu_seconds": 60}, "cpu_seconds=60 is over this service's maximum of 5"),
    ],
)
async def test_a_request_over_the_services_limits_is_a_400_naming_the_limit(
    service: RunningService, runner: FakeRunner, limits: dict[str, int], named: str
) -> None:
    status, response = await exchange(port_of(service), post(run_body(limits=limits)))
    assert status == 400
    assert named in json.loads(response.partition(b"\r\n\r\n")[2])["error"]
    assert runner.calls == []


async def test_the_client_reports_limits_over_the_services_as_a_bad_request(
    service: RunningService, runner: FakeRunner
) -> None:
    client = SandboxClient(url=service.url, token=TOKEN)
    try:
        with pytest.raises(BadRequest, match="memory_mb=4096 is over"):
            await client.run(
                language="python", code="1", limits=SERVICE_LIMITS.replaced(memory_mb=4096)
            )
    finally:
        await client.aclose()
    assert runner.calls == []


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        b"",
        b"Bearer",
        b"Bearer wrong",
        b"Bearer \xff\xfe\x80",
        b"Bearer " + TOKEN.encode() + b"\xff",
        b"\xc3\xa9" * 100,
        b"bearer " + TOKEN.encode(),
    ],
)
async def test_a_request_without_the_exact_token_is_refused_with_401_and_never_runs(
    service: RunningService, runner: FakeRunner, authorization: bytes | None
) -> None:
    status, response = await exchange(
        port_of(service), post(run_body(), authorization=authorization)
    )
    assert status == 401, response[:300]
    assert runner.calls == []


async def test_an_unauthenticated_request_is_answered_and_its_connection_closed(
    service: RunningService,
) -> None:
    keep_alive = b"GET /healthz HTTP/1.1\r\nHost: sandbox\r\n\r\n"
    status, response = await exchange(port_of(service), keep_alive, timeout=3)
    assert status == 200 and b"Connection: close" in response


DEEP = b"[" * 100_000
HOSTILE_BODIES = {
    "100,000 nested arrays": DEEP,
    "100,000 nested objects": b'{"a":' * 100_000,
    "nested arrays as a limit": run_body()[:-1] + b',"limits":{"tasks":' + DEEP + b"}",
    "nested arrays as the language": b'{"code":"1","language":' + b"[" * 900 + b"]" * 900 + b"}",
    "nested arrays as a limit, deep but parseable": (
        b'{"language":"python","code":"1","limits":{"tasks":' + b"[" * 900 + b"]" * 900 + b"}}"
    ),
    "invalid UTF-8": b'{"language":"python","code":"\xff\xfe"}',
    "UTF-16": run_body().decode().encode("utf-16"),
    "a lone continuation byte": b"\x80",
    "empty": b"",
    "truncated": run_body()[:-3],
    "a JSON array": b"[1, 2]",
    "a JSON string": b'"run"',
    "an unknown field": run_body(shell=True),
    "limits not an object": run_body(limits=[1]),
    "an unknown limit": run_body(limits={"memory": 64}),
    "a number no float can hold": run_body()[:-1] + b',"limits":{"memory_mb":1e400}}',
    "an integer no float can hold": run_body()[:-1]
    + b',"limits":{"memory_mb":1'
    + b"0" * 400
    + b"}}",
    "an integer over 4300 digits": run_body()[:-1] + b',"limits":{"tasks":1' + b"0" * 5000 + b"}}",
    "NaN": run_body()[:-1] + b',"limits":{"wall_seconds":NaN}}',
    "-Infinity": run_body()[:-1] + b',"limits":{"wall_seconds":-Infinity}}',
    "a boolean limit": run_body(limits={"tasks": True}),
    "a fractional task count": run_body(limits={"tasks": 1.5}),
    "a string limit": run_body(limits={"tasks": "8"}),
    "code not a string": run_body(code=["print(1)"]),
    "workspace not a string": run_body(workspace={"../..": 1}),
    "a language with a lone surrogate": run_body(language="\udcff"),
}


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
async def test_a_body_that_is_not_a_valid_request_is_a_400_never_a_500(
    service: RunningService, runner: FakeRunner, body: bytes
) -> None:
    status, response = await exchange(port_of(service), post(body))
    assert status == 400, response[:300]
    assert "error" in json.loads(response.partition(b"\r\n\r\n")[2])


RUN = post(run_body())
MALFORMED_HTTP = {
    "a non-UTF-8 path": b"POST /v1/run\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    "a non-UTF-8 header name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-\xff: 1\r\n\r\n",
    "a NUL in a header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "Content-Length and chunked": RUN.replace(b"Connection", b"Transfer-Encoding: chunked\r\nC"),
    "two Content-Lengths": RUN.replace(b"Connection", b"Content-Length: 5\r\nConnection"),
    "a negative Content-Length": post(b"").replace(b"Length: 0", b"Length: -1"),
    "a Content-Length of 23 digits": post(b"").replace(b"Length: 0", b"Length: 9" * 23),
    "a bad chunk size": post(b"").replace(b"Content-Length: 0", b"Transfer-Encoding: chunked")
    + b"zz\r\n",
    "a 20 KB URL": b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "TLS on the HTTP port": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 100,
    "an unknown method": b"BREW /v1/run HTTP/1.1\r\nHost: x\r\n\r\n",
    "a folded Authorization": post(run_body(), authorization=b"Bearer\r\n " + TOKEN.encode()),
}


@pytest.mark.parametrize("request_", MALFORMED_HTTP.values(), ids=MALFORMED_HTTP.keys())
async def test_malformed_http_is_a_400_without_a_traceback_in_the_log(
    service: RunningService, runner: FakeRunner, request_: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    status, _ = await exchange(port_of(service), request_)
    assert status == 400
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert runner.calls == []


async def test_code_with_lone_surrogates_and_nul_bytes_reaches_the_runner_intact(
    service: RunningService, runner: FakeRunner
) -> None:
    status, _ = await exchange(port_of(service), post(run_body(code="a\x00\udcff\ud800")))
    assert status == 200 and runner.calls[0]["code"] == "a\x00\udcff\ud800"


async def test_a_body_over_the_size_limit_is_a_413_before_it_is_read(
    service: RunningService,
) -> None:
    head = post(b"")[: -len(b"Content-Length: 0\r\nConnection: close\r\n\r\n")]
    status, _ = await exchange(port_of(service), head + b"Content-Length: 100000000\r\n\r\n")
    assert status == 413


async def test_a_compressed_body_is_not_inflated(service: RunningService) -> None:
    import gzip

    bomb = gzip.compress(b"[" * 10_000_000)
    request = post(bomb).replace(
        b"Connection: close", b"Content-Encoding: gzip\r\nConnection: close"
    )
    status, _ = await exchange(port_of(service), request)
    assert status == 400


class BrokenRunner:
    """A runner with a bug: every run raises something no one expected."""

    async def run(self, **kwargs: object) -> None:
        raise RuntimeError("secret detail of the host")


async def test_an_unexpected_error_is_a_json_500_that_reveals_nothing() -> None:
    options = ServiceOptions(token=TOKEN)
    running = await start_service(runner=BrokenRunner(), options=options, port=0)  # type: ignore[arg-type]
    try:
        status, response = await exchange(port_of(running), post(run_body()))
    finally:
        await running.close()
    assert status == 500
    body = response.partition(b"\r\n\r\n")[2]
    assert json.loads(body) == {"error": "internal error of the sandbox service"}
    assert b"secret" not in response and b"Traceback" not in response


async def test_an_error_quoting_a_huge_request_is_cut_short(service: RunningService) -> None:
    status, response = await exchange(port_of(service), post(run_body(language="é" * 50_000)))
    assert status == 400 and len(response) < 8000
