"""The live page's server over real HTTP: who may read, who may pin, and what is refused.

A real aiohttp server in front of a real analysis loop and memory store; requests are sent
by aiohttp's client with the headers a browser would send (Cookie, Origin, X-CSRF-Token).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.loop import AnalysisLoop
from lipservice_otel.control.config import ControlConfig
from lipservice_otel.control.security import ControlTokens
from lipservice_otel.policy.model import Policy
from lipservice_otel.report.savings import Price
from lipservice_otel.sampling.aggregates import IntervalReport, PatternCounts, PatternInfo
from lipservice_otel.store.memory import MemoryStore
from lipservice_otel.ui.config import UiConfig
from lipservice_otel.ui.server import LiveUi

BEARER = "reader-token-0123456789"
ADMIN = "admin-token-0123456789"
TOKENS = ControlTokens(BEARER, ADMIN)
PIN = {"pattern_id": "abcdef0123456789", "rate": 0.25, "for_s": 600}


class Page:
    def __init__(self, ui: LiveUi, server: TestServer, client: aiohttp.ClientSession) -> None:
        self.ui = ui
        self.loop = ui._api._loop
        self.origin = f"http://127.0.0.1:{server.port}"
        self.client = client

    def url(self, path: str) -> str:
        return f"{self.origin}{path}"

    async def status(self, method: str, path: str, **kwargs) -> int:
        async with self.client.request(method, self.url(path), **kwargs) as response:
            return response.status

    async def sign_in(self, token: str) -> tuple[int, str | None, aiohttp.ClientResponse]:
        async with self.client.post(
            self.url("/signin"),
            data={"token": token},
            headers={"Origin": self.origin},
            allow_redirects=False,
        ) as response:
            cookie = response.cookies.get("lipservice_session")
            return response.status, cookie.value if cookie else None, response

    async def session(self, cookie: str | None) -> dict:
        headers = {"Cookie": f"lipservice_session={cookie}"} if cookie else {}
        async with self.client.get(self.url("/api/session"), headers=headers) as response:
            assert response.status == 200
            document = await response.json()
            document["set_cookie"] = response.cookies.get("lipservice_session")
            return document

    async def pin(self, cookie: str | None, csrf: str | None, origin: str | None = "", **extra):
        headers = {"Content-Type": "application/json", **extra.pop("headers", {})}
        if cookie:
            headers["Cookie"] = f"lipservice_session={cookie}"
        if csrf:
            headers["X-CSRF-Token"] = csrf
        if origin is not None:
            headers["Origin"] = origin or self.origin
        async with self.client.post(
            self.url("/api/pin"), json=extra.pop("body", PIN), headers=headers
        ) as response:
            return response.status, await response.json()


@contextlib.asynccontextmanager
async def page(tokens: ControlTokens = TOKENS) -> AsyncIterator[Page]:
    store = MemoryStore(None, history_limit=10)
    loop = AnalysisLoop(AnalysisConfig(interval_s=1.0), store, Policy(version=1))
    ui = LiveUi(UiConfig(endpoint="127.0.0.1:0"), ControlConfig(), tokens, loop, store, Price())
    loop.ingest(
        IntervalReport(
            counts=[PatternCounts("svc", PIN["pattern_id"], "info", 100, 20, 9000, 1800)],
            patterns={PIN["pattern_id"]: PatternInfo("svc", "job <*> done", ["job 7 done"])},
            overflow_records=0,
        )
    )
    await loop.cycle()
    server = TestServer(ui.application(), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as client:
            yield Page(ui, server, client)
    finally:
        await server.close()


def run(test):
    return asyncio.run(test())


def test_the_api_needs_a_session_or_a_bearer_header():
    async def test():
        async with page() as p:
            assert await p.status("GET", "/api/summary") == 401
            assert (
                await p.status("GET", "/api/patterns", headers={"Authorization": "Bearer x"}) == 401
            )
            bearer = {"Authorization": f"Bearer {BEARER}"}
            for path in ("summary", "patterns", "series", "history", "anomalies", "pins"):
                assert await p.status("GET", f"/api/{path}", headers=bearer) == 200, path
            # The page itself loads: it shows the sign-in form.
            assert await p.status("GET", "/") == 200

    run(test)


def test_signing_in_sets_an_httponly_strict_cookie():
    async def test():
        async with page() as p:
            status, cookie, response = await p.sign_in("a-wrong-token-of-length")
            assert (status, cookie) == (303, None)
            assert response.headers["Location"] == "/?signin=refused"
            status, cookie, response = await p.sign_in(BEARER)
            assert status == 303 and cookie
            set_cookie = response.headers["Set-Cookie"]
            assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
            assert "Secure" not in set_cookie  # plain HTTP on loopback
            headers = {"Cookie": f"lipservice_session={cookie}"}
            assert await p.status("GET", "/api/summary", headers=headers) == 200
            session = await p.session(cookie)
            assert session["signed_in"] and not session["admin"] and session["csrf"]

    run(test)


def test_pinning_needs_the_admin_token_csrf_and_origin():
    async def test():
        async with page() as p:
            _, reader, _ = await p.sign_in(BEARER)
            reader_csrf = (await p.session(reader))["csrf"]
            status, body = await p.pin(reader, reader_csrf)
            assert status == 403 and "admin_token" in body["error"]

            _, admin, _ = await p.sign_in(ADMIN)
            csrf = (await p.session(admin))["csrf"]
            assert (await p.pin(admin, None))[0] == 403
            assert (await p.pin(admin, reader_csrf))[0] == 403  # another session's token
            assert (await p.pin(admin, csrf, origin="http://evil.example"))[0] == 403
            assert (await p.pin(admin, csrf, origin=None))[0] == 403
            assert p.loop.state.overrides == {}

            before = p.loop.policy.version
            status, body = await p.pin(admin, csrf)
            assert status == 200
            assert body["policy_version"] == p.loop.policy.version > before
            override = p.loop.state.overrides[PIN["pattern_id"]]
            assert override.rate == 0.25 and override.note == "pinned on the live page"
            rule = p.loop.policy.pattern_rules[PIN["pattern_id"]]
            assert (rule.rate, rule.reason) == (0.25, "override")

    run(test)


def test_a_bearer_header_pins_without_csrf_only_with_the_admin_token():
    async def test():
        async with page() as p:
            reader = {"Authorization": f"Bearer {BEARER}"}
            assert (await p.pin(None, None, origin=None, headers=reader))[0] == 403
            admin = {"Authorization": f"Bearer {ADMIN}"}
            status, body = await p.pin(None, None, origin=None, headers=admin)
            assert status == 200
            async with p.client.get(p.url("/api/pins"), headers=admin) as response:
                pins = (await response.json())["pins"]
            assert [(x["pattern_id"], x["rate"], x["in_policy"]) for x in pins] == [
                (PIN["pattern_id"], 0.25, True)
            ]
            assert pins[0]["expires_unix"] == pytest.approx(body["expires_unix"], abs=1)

    run(test)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "JSON object"),
        ({**PIN, "rate": 1.5}, "rate: must be 0-1"),
        ({**PIN, "rate": "half"}, "rate: a finite number"),
        ({**PIN, "for_s": 0}, "for_s: must be > 0"),
        ({**PIN, "for_s": 10**9}, "for_s: must be > 0"),
        ({**PIN, "pattern_id": ""}, "pattern_id"),
        ({**PIN, "colour": "red"}, "colour: unknown field"),
        ({**PIN, "note": "x" * 300}, "note"),
    ],
)
def test_a_bad_pin_is_a_400_naming_the_field(body, message):
    async def test():
        async with page() as p:
            admin = {"Authorization": f"Bearer {ADMIN}"}
            status, answer = await p.pin(None, None, origin=None, headers=admin, body=body)
            assert status == 400 and message in answer["error"]
            assert p.loop.state.overrides == {}

    run(test)


def test_a_host_that_is_not_loopback_is_refused():
    async def test():
        async with page(ControlTokens()) as p:
            headers = {"Host": "rebound.example:80"}
            assert await p.status("GET", "/api/summary", headers=headers) == 403
            assert await p.status("GET", "/", headers=headers) == 403
            assert await p.status("GET", "/", headers={"Host": "localhost"}) == 200

    run(test)


def test_without_tokens_reading_is_open_and_pinning_still_needs_csrf():
    async def test():
        async with page(ControlTokens()) as p:
            assert await p.status("GET", "/api/summary") == 200
            session = await p.session(None)
            assert not session["sign_in_required"] and session["admin"]
            cookie = session["set_cookie"].value
            assert (await p.pin(cookie, None))[0] == 403
            assert (await p.pin(None, None, origin=None))[0] == 403
            assert (await p.pin(cookie, session["csrf"]))[0] == 200

    run(test)


def test_every_response_forbids_framing_and_inline_script():
    async def test():
        async with page() as p:
            for path in ("/", "/api/summary", "/static/app.js"):
                async with p.client.get(p.url(path)) as response:
                    assert response.headers["X-Frame-Options"] == "DENY"
                    policy = response.headers["Content-Security-Policy"]
                    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy

    run(test)


def test_signing_out_forgets_the_session():
    async def test():
        async with page() as p:
            _, cookie, _ = await p.sign_in(ADMIN)
            csrf = (await p.session(cookie))["csrf"]
            headers = {"Cookie": f"lipservice_session={cookie}", "Origin": p.origin}
            async with p.client.post(
                p.url("/signout"), data={"csrf": "wrong"}, headers=headers, allow_redirects=False
            ) as response:
                assert response.status == 303
            assert await p.status("GET", "/api/summary", headers=headers) == 200
            async with p.client.post(
                p.url("/signout"), data={"csrf": csrf}, headers=headers, allow_redirects=False
            ) as response:
                assert response.status == 303
                assert 'lipservice_session=""' in response.headers["Set-Cookie"]
            assert await p.status("GET", "/api/summary", headers=headers) == 401

    run(test)


def test_with_only_an_admin_token_reading_is_open_and_signing_in_pins():
    async def test():
        async with page(ControlTokens(admin=ADMIN)) as p:
            assert await p.status("GET", "/api/summary") == 200
            anonymous = await p.session(None)
            assert anonymous["sign_in_available"] and not anonymous["admin"]
            cookie = anonymous["set_cookie"].value
            assert (await p.pin(cookie, anonymous["csrf"]))[0] == 403
            assert (await p.sign_in(BEARER))[1] is None  # not a token of this page
            _, admin, _ = await p.sign_in(ADMIN)
            session = await p.session(admin)
            assert session["admin"]
            assert (await p.pin(admin, session["csrf"]))[0] == 200

    run(test)


def test_the_savings_follow_each_cycle():
    async def test():
        async with page() as p:
            bearer = {"Authorization": f"Bearer {BEARER}"}

            async def records_per_second() -> float:
                async with p.client.get(p.url("/api/summary"), headers=bearer) as response:
                    return (await response.json())["savings"]["totals"]["records_per_second"]

            first = await records_per_second()
            assert first > 0
            assert await records_per_second() == first  # no cycle, the same report
            p.loop.ingest(
                IntervalReport(
                    counts=[PatternCounts("svc", PIN["pattern_id"], "info", 5000, 50, 9, 9)],
                    patterns={},
                    overflow_records=0,
                )
            )
            await p.loop.cycle()
            assert await records_per_second() > first

    run(test)


def test_a_taken_port_is_an_error_naming_ui_endpoint():
    async def test():
        store = MemoryStore(None, history_limit=10)
        loop = AnalysisLoop(AnalysisConfig(), store, Policy(version=1))

        def live(endpoint: str) -> LiveUi:
            return LiveUi(
                UiConfig(endpoint=endpoint), ControlConfig(), TOKENS, loop, store, Price()
            )

        first = live("127.0.0.1:0")
        await first.start()
        try:
            second = live(f"127.0.0.1:{first.port}")
            with pytest.raises(OSError, match=rf"ui.endpoint: cannot bind 127.0.0.1:{first.port}"):
                await second.start()
            await second.stop()  # after a failed start: nothing to stop, no error
        finally:
            await first.stop()

    run(test)
