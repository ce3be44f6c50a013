"""HTTP tools against a real aiohttp server on loopback: secrets, encoding, redirects, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from bot.tools.registry import ToolRegistry
from bot.tools.values import ToolOutcome
from tests.integration.tools_setup import ALICE, registry

TOKEN = "st-9f2c51d7e08b4a"


@dataclass
class StatusApi:
    """A status API that wants ``Bearer TOKEN``, plus routes that misbehave on purpose."""

    seen: list[web.Request] = field(default_factory=list)
    runner: web.AppRunner | None = None
    base: str = ""

    async def start(self, host: str = "127.0.0.1") -> str:
        app = web.Application()
        app.router.add_get("/v1/services/{name}", self.service)
        app.router.add_get("/v1/search", self.search)
        app.router.add_post("/v1/items", self.items)
        app.router.add_get("/echo-auth", self.echo_auth)
        app.router.add_get("/redirect/{to}", self.redirect)
        app.router.add_get("/status/{code}", self.status)
        app.router.add_get("/big", self.big)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/loop", self.loop)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://{host}:{port}"
        return self.base

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def _authorised(self, request: web.Request) -> None:
        self.seen.append(request)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise web.HTTPUnauthorized(text="no token")

    async def service(self, request: web.Request) -> web.Response:
        self._authorised(request)
        name = request.match_info["name"]
        return web.json_response(
            {"service": name, "status": "ok", "raw_path": request.raw_path, "n": 3}
        )

    async def search(self, request: web.Request) -> web.Response:
        self._authorised(request)
        return web.json_response({"query": [[k, v] for k, v in request.query.items()]})

    async def items(self, request: web.Request) -> web.Response:
        self._authorised(request)
        return web.json_response({"received": await request.json()})

    async def echo_auth(self, request: web.Request) -> web.Response:
        self._authorised(request)
        return web.Response(text=f"you sent {request.headers['Authorization']}")

    async def redirect(self, request: web.Request) -> web.Response:
        self._authorised(request)
        raise web.HTTPFound(request.query["location"])

    async def loop(self, request: web.Request) -> web.Response:
        self._authorised(request)
        raise web.HTTPFound("/loop")

    async def status(self, request: web.Request) -> web.Response:
        self._authorised(request)
        code = int(request.match_info["code"])
        return web.json_response({"error": "down for maintenance"}, status=code)

    async def big(self, request: web.Request) -> web.StreamResponse:
        self._authorised(request)
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"y" * 16384)
        return response

    async def slow(self, request: web.Request) -> web.Response:
        self._authorised(request)
        await asyncio.sleep(2)
        return web.Response(text="late")


@pytest.fixture
async def api() -> AsyncIterator[StatusApi]:
    server = StatusApi()
    await server.start()
    yield server
    await server.stop()


def tools_for(base: str, *, extra: str = "") -> str:
    return f"""
[status]
kind = "http"
url = "{base}/v1/services/{{service}}"
headers = {{ Authorization = "Bearer ${{env:STATUS_TOKEN}}" }}
[status.params.service]

[search]
kind = "http"
url = "{base}/v1/search?q={{q}}&limit={{limit}}"
headers = {{ Authorization = "Bearer ${{env:STATUS_TOKEN}}" }}
[search.params.q]
[search.params.limit]
type = "integer"
default = 5

[create]
kind = "http"
method = "post"
url = "{base}/v1/items"
headers = {{ Authorization = "Bearer ${{env:STATUS_TOKEN}}" }}
body = {{ name = "{{name}}", count = "{{count}}", dry = "{{dry}}", tags = ["{{name}}", "x"] }}
[create.params.name]
[create.params.count]
type = "integer"
[create.params.dry]
type = "boolean"
default = true

[fail]
kind = "http"
url = "{base}/status/{{code}}"
headers = {{ Authorization = "Bearer ${{env:STATUS_TOKEN}}" }}
[fail.params.code]
type = "integer"

[get]
kind = "http"
url = "{base}/{{path}}"
headers = {{ Authorization = "Bearer ${{env:STATUS_TOKEN}}" }}
{extra}
[get.params.path]
"""


def status_tools(base: str, *, extra: str = "") -> ToolRegistry:
    return registry(tools_for(base, extra=extra), environ={"STATUS_TOKEN": TOKEN})


async def test_the_secret_header_is_sent_and_the_json_answer_is_parsed(api: StatusApi) -> None:
    tools = status_tools(api.base)
    outcome = await tools.call("status", {"service": "api"}, caller=ALICE)
    assert outcome.ok, outcome
    assert outcome.result == {
        "service": "api",
        "status": "ok",
        "raw_path": "/v1/services/api",
        "n": 3,
    }
    assert outcome.result_bytes > 0 and not outcome.truncated
    await tools.aclose()


async def test_a_secret_echoed_back_comes_out_redacted(api: StatusApi) -> None:
    tools = status_tools(api.base)
    outcome = await tools.call("get", {"path": "echo-auth"}, caller=ALICE)
    assert outcome.result == "you sent Bearer [redacted:STATUS_TOKEN]"
    assert outcome.redacted == ("STATUS_TOKEN",)
    await tools.aclose()


async def test_a_path_value_cannot_climb_out_of_its_segment(api: StatusApi) -> None:
    tools = status_tools(api.base)
    value = "../../admin?x=1#frag"
    outcome = await tools.call("status", {"service": value}, caller=ALICE)
    assert isinstance(outcome.result, dict)
    assert outcome.result["service"] == value
    assert outcome.result["raw_path"] == "/v1/services/..%2F..%2Fadmin%3Fx%3D1%23frag"
    await tools.aclose()


async def test_a_query_value_cannot_add_parameters(api: StatusApi) -> None:
    tools = status_tools(api.base)
    outcome = await tools.call("search", {"q": "disk full&admin=1", "limit": 2}, caller=ALICE)
    assert outcome.result == {"query": [["q", "disk full&admin=1"], ["limit", "2"]]}
    await tools.aclose()


async def test_a_json_body_keeps_the_types_of_its_parameters(api: StatusApi) -> None:
    tools = status_tools(api.base)
    outcome = await tools.call("create", {"name": 'a"b', "count": 3}, caller=ALICE)
    assert outcome.result == {
        "received": {"name": 'a"b', "count": 3, "dry": True, "tags": ['a"b', "x"]}
    }
    await tools.aclose()


async def follow(tools: ToolRegistry, location: str) -> ToolOutcome:
    """Call a tool whose fixed URL redirects to ``location``."""
    return await tools.call("hop", {"location": location}, caller=ALICE)


@pytest.fixture
async def other_host() -> AsyncIterator[StatusApi]:
    server = StatusApi()
    await server.start(host="localhost")
    yield server
    await server.stop()


def hop_tools(base: str) -> ToolRegistry:
    return registry(
        f"""
[hop]
kind = "http"
url = "{base}/redirect/r?location={{location}}"
headers = {{ Authorization = "Bearer ${{env:STATUS_TOKEN}}" }}
[hop.params.location]
""",
        environ={"STATUS_TOKEN": TOKEN},
    )


async def test_redirects_follow_the_same_host_and_refuse_another(
    api: StatusApi, other_host: StatusApi
) -> None:
    tools = hop_tools(api.base)
    same = await follow(tools, f"{api.base}/v1/services/db")
    assert same.ok and isinstance(same.result, dict) and same.result["service"] == "db"
    away = await follow(tools, f"{other_host.base}/v1/services/db")
    assert away.ok is False
    assert away.error is not None and "a redirect to http://localhost is refused" in away.error
    assert other_host.seen == []  # the token never left for the other host
    await tools.aclose()
    tools = status_tools(api.base)
    looping = await tools.call("get", {"path": "loop"}, caller=ALICE)
    assert looping.error == "more than 3 redirects"
    assert [r.path for r in api.seen[-4:]] == ["/loop"] * 4
    await tools.aclose()


async def test_a_non_2xx_answer_is_a_failed_call_naming_the_status(api: StatusApi) -> None:
    tools = status_tools(api.base)
    outcome = await tools.call("fail", {"code": 503}, caller=ALICE)
    assert (outcome.ok, outcome.error) == (False, "HTTP 503 Service Unavailable")
    assert outcome.result == {"error": "down for maintenance"}
    await tools.aclose()


async def test_a_wrong_token_is_a_401(api: StatusApi) -> None:
    tools = registry(tools_for(api.base), environ={"STATUS_TOKEN": "wrong-token"})
    outcome = await tools.call("status", {"service": "api"}, caller=ALICE)
    assert (outcome.ok, outcome.error) == (False, "HTTP 401 Unauthorized")
    await tools.aclose()


async def test_a_body_over_the_cap_is_cut_while_reading_and_marked(api: StatusApi) -> None:
    tools = status_tools(api.base, extra="max_result_bytes = 1000")
    outcome = await tools.call("get", {"path": "big"}, caller=ALICE)
    assert outcome.ok and outcome.truncated
    assert (outcome.result, outcome.result_bytes) == ("y" * 1000, 1000)
    await tools.aclose()


async def test_a_slow_answer_times_out(api: StatusApi) -> None:
    tools = status_tools(api.base, extra="timeout_seconds = 0.5")
    outcome = await tools.call("get", {"path": "slow"}, caller=ALICE)
    assert (outcome.ok, outcome.error) == (False, "timed out after 0.5 s")
    assert outcome.duration_ms < 3000
    await tools.aclose()


async def test_doctor_checks_that_the_host_resolves(api: StatusApi) -> None:
    tools = registry(
        f'[ok]\nkind = "http"\nurl = "{api.base}/v1"\n'
        '[bad]\nkind = "http"\nurl = "https://opsloop-test.invalid/v1"\n'
    )
    ok, bad = await tools.check()
    assert (ok.ok, ok.detail) == (True, "its host resolves")
    assert not bad.ok and bad.detail.startswith("opsloop-test.invalid does not resolve")
