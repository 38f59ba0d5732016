"""Who may see the live page and who may act on it.

The page follows the control plane's tokens (control/security.py decides what a token
admits): with a bearer token set, every /api/ call needs a signed-in session (cookie) or an
`Authorization: Bearer` header; pinning a rate needs what `SetOverride` needs (the admin
token). A session's changes also need its CSRF token and a same-origin `Origin` header: the
cookie rides along with any request the browser sends, the CSRF token only with the page's
own. On a loopback endpoint the `Host` header must name a loopback host too, so a site whose
name is made to resolve to 127.0.0.1 (DNS rebinding) is refused before anything runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from lipservice_otel.control.config import ControlConfig
from lipservice_otel.control.security import (
    ControlTokens,
    admits_changes,
    admits_reading,
    is_loopback,
)
from lipservice_otel.ui.config import UiConfig
from lipservice_otel.ui.session import CSRF_HEADER, SESSION_COOKIE, Session, Sessions
from lipservice_otel.validation import ConfigError

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))


def check_ui_exposure(ui: UiConfig, control: ControlConfig, tokens: ControlTokens) -> None:
    """The control plane's rule for the page: off loopback, only behind a token."""
    mutual_tls = ui.tls.client_ca_file is not None
    if not ui.enabled or is_loopback(ui.endpoint) or tokens.bearer is not None or mutual_tls:
        return
    if control.allow_insecure:
        log.warning(
            "live page on %s without a control.auth bearer token (control.allow_insecure): "
            "anyone who reaches it sees every pattern and can pin rates",
            ui.endpoint,
        )
        return
    raise ConfigError(
        f"ui.endpoint: {ui.endpoint} is not a loopback address and the live page would show "
        "every pattern and pin rates for anyone: set control.auth.bearer_token (or "
        "bearer_token_file, or LIPSERVICE_CONTROL__AUTH__BEARER_TOKEN; the page's sign-in "
        "takes it), or mutual TLS (ui.tls.cert_file, key_file and client_ca_file), or listen "
        "on 127.0.0.1; control.allow_insecure: true accepts the risk"
    )


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: what they may do, and their session when they came with one."""

    admin: bool
    session: Session | None = None


class Access:
    def __init__(self, tokens: ControlTokens, sessions: Sessions, loopback_only: bool) -> None:
        self.tokens = tokens
        self.sessions = sessions
        self._loopback_only = loopback_only

    @property
    def sign_in_required(self) -> bool:
        return not admits_reading(self.tokens, None)

    def sign_in(self, token: str) -> Session | None:
        """A session for a token the control plane admits, or None."""
        authorization = f"Bearer {token}"
        # Without a bearer token anyone reads: only the admin token is worth signing in with.
        reads = self.sign_in_required and admits_reading(self.tokens, authorization)
        if not token or not (reads or admits_changes(self.tokens, authorization)):
            return None
        return self.sessions.open(admin=admits_changes(self.tokens, authorization))

    def open_session(self) -> Session:
        """A session without sign-in (no bearer token is set): it carries the CSRF token."""
        return self.sessions.open(admin=admits_changes(self.tokens, None))

    def caller(self, request: web.Request) -> Caller | None:
        """Who sent `request`, or None when it must sign in."""
        authorization = request.headers.get("Authorization")
        if authorization is not None:
            if not admits_reading(self.tokens, authorization):
                return None
            return Caller(admin=admits_changes(self.tokens, authorization))
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is not None:
            return Caller(admin=session.admin, session=session)
        if self.sign_in_required:
            return None
        return Caller(admin=False)

    def refusal(self, request: web.Request) -> str | None:
        """Why a request is refused before any handler runs (403), or None."""
        if self._loopback_only and not is_loopback(_with_port(request.host)):
            return f"Host {request.host!r} is not a loopback name"
        if request.method in SAFE_METHODS:
            return None
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return f"Origin {origin!r} is not this page's"
        return None

    def change_refusal(self, request: web.Request, caller: Caller, form_csrf: str | None = None):
        """Why `caller` may not change the policy with `request` (403), or None. A bearer
        header is not ambient (a browser never adds it by itself): only a session's request
        needs the CSRF token and an Origin."""
        if not caller.admin:
            return "pinning changes the policy: sign in with control.auth.admin_token"
        if caller.session is None:
            if request.headers.get("Authorization") is not None:
                return None
            return "no session: load the page first (it holds the CSRF token)"
        if request.headers.get("Origin") is None:
            return "a session's change needs an Origin header"
        presented = request.headers.get(CSRF_HEADER, form_csrf)
        if not caller.session.csrf_matches(presented):
            return f"missing or wrong CSRF token ({CSRF_HEADER})"
        return None


def _with_port(host: str) -> str:
    """`Host` as HOST:PORT for is_loopback (a Host without a port names port 80/443)."""
    if host.endswith("]") or ":" not in host:
        return f"{host}:0"
    return host
