"""The live page's HTTP server: the static page, sign-in and sign-out, the JSON API; started
and stopped with the analysis it shows (app/service.py's Analyzer).

Every response says not to be framed or sniffed, and the page may load only its own script
and style (Content-Security-Policy): a pattern's example is shown as text, never as markup,
and a page that frames this one cannot make a click pin a rate.
"""

from __future__ import annotations

import logging
from importlib import resources

from aiohttp import web

from lipservice_otel.analysis.loop import AnalysisLoop
from lipservice_otel.control.config import ControlConfig
from lipservice_otel.control.security import ControlTokens, is_loopback
from lipservice_otel.receiver.security import http_ssl_context
from lipservice_otel.report.current import CurrentSavings
from lipservice_otel.report.savings import Price
from lipservice_otel.store import Store
from lipservice_otel.ui.access import Access, check_ui_exposure
from lipservice_otel.ui.api import Api
from lipservice_otel.ui.config import UiConfig
from lipservice_otel.ui.history import History
from lipservice_otel.ui.session import SESSION_COOKIE, Session, Sessions

log = logging.getLogger(__name__)

STATIC_FILES = {
    "/": ("index.html", "text/html"),
    "/static/app.js": ("app.js", "text/javascript"),
    "/static/style.css": ("style.css", "text/css"),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not no-referrer: with it the browser sends `Origin: null` and the Origin check fails.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# A sign-in form or a pin is a few hundred bytes.
MAX_REQUEST_BYTES = 64 * 1024


class LiveUi:
    def __init__(
        self,
        config: UiConfig,
        control: ControlConfig,
        tokens: ControlTokens,
        loop: AnalysisLoop,
        store: Store,
        price: Price,
        savings: CurrentSavings | None = None,
    ) -> None:
        # Checked before anything binds, as the control plane's exposure is.
        check_ui_exposure(config, control, tokens)
        self.config = config
        self.history = History(
            config.bucket_s, config.history_s, config.sparkline_patterns, config.max_anomalies
        )
        loop.observe(self.history)
        sessions = Sessions(config.session_ttl_s, config.max_sessions)
        self.access = Access(tokens, sessions, loopback_only=is_loopback(config.endpoint))
        # The analyzer's, shared with the savings gauges; a page of its own computes its own.
        savings = savings or CurrentSavings(loop, price)
        self._api = Api(loop, store, self.history, self.access, savings, self.set_cookie)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_REQUEST_BYTES)
        app.add_routes([web.get(path, self._static) for path in STATIC_FILES])
        app.add_routes([web.post("/signin", self._sign_in), web.post("/signout", self._sign_out)])
        app.add_routes(self._api.routes())
        return app

    async def start(self) -> None:
        host, _, port = self.config.endpoint.rpartition(":")
        self._runner = web.AppRunner(self.application(), access_log=None)
        await self._runner.setup()
        tls = self.config.tls
        site = web.TCPSite(
            self._runner,
            host.strip("[]"),
            int(port),
            ssl_context=http_ssl_context(tls) if tls.enabled else None,
        )
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise OSError(f"ui.endpoint: cannot bind {self.config.endpoint}: {exc}") from None
        self.port = self._runner.addresses[0][1]
        scheme = "https" if tls.enabled else "http"
        log.info("live page on %s://%s:%d/", scheme, host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def set_cookie(self, response: web.StreamResponse, session: Session) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            session.id,
            max_age=int(self.config.session_ttl_s),
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.config.tls.enabled,
        )

    # ---- handlers ----

    @web.middleware
    async def _guard(self, request: web.Request, handler) -> web.StreamResponse:
        refusal = self.access.refusal(request)
        try:
            if refusal is not None:
                response = web.json_response({"error": refusal}, status=403)
            else:
                response = await handler(request)
        except web.HTTPException as exc:  # the API's 4xx/5xx answers
            exc.headers.update(SECURITY_HEADERS)
            raise
        response.headers.update(SECURITY_HEADERS)
        return response

    async def _static(self, request: web.Request) -> web.Response:
        name, content_type = STATIC_FILES[request.path]
        body = resources.files("lipservice_otel.ui").joinpath("static", name).read_bytes()
        return web.Response(body=body, content_type=content_type, charset="utf-8")

    async def _sign_in(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = form.get("token")
        session = self.access.sign_in(token.strip() if isinstance(token, str) else "")
        if session is None:
            log.warning("live page: sign-in refused from %s", request.remote)
            return _see_other("/?signin=refused")
        response = _see_other("/")
        self.set_cookie(response, session)
        return response

    async def _sign_out(self, request: web.Request) -> web.Response:
        session = self.access.sessions.get(request.cookies.get(SESSION_COOKIE))
        form = await request.post()
        csrf = form.get("csrf")
        if session is not None and session.csrf_matches(csrf if isinstance(csrf, str) else None):
            self.access.sessions.close(session.id)
        response = _see_other("/")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response


def _see_other(location: str) -> web.Response:
    """After a form's POST the browser loads `location` with a GET (303)."""
    return web.Response(status=303, headers={"Location": location})
