"""Sign-in sessions of the live page, held server-side.

A browser cannot send a bearer header when it navigates, so signing in trades the control
plane's token for a random session id in an HttpOnly, SameSite=Strict cookie: scripts cannot
read it and other sites' pages cannot make the browser send it. Each session carries its own
CSRF token, which the page's script sends back on every change it asks for. Sessions expire
after `ttl_s` and are bounded in number (the oldest goes first), so signing in in a loop
costs bounded memory.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_COOKIE = "lipservice_session"
CSRF_HEADER = "X-CSRF-Token"
# 256 bits each: neither the session id nor the CSRF token can be guessed.
TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class Session:
    id: str = field(repr=False)
    csrf: str = field(repr=False)
    # Signed in with a token that may change the policy (the control plane's admin rule).
    admin: bool
    expires_at: float  # on the sessions' monotonic clock

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented, self.csrf)


class Sessions:
    def __init__(
        self, ttl_s: float, max_sessions: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s = ttl_s
        self._max = max_sessions
        self._clock = clock
        # Oldest first: expiry and the bound both drop from the front.
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, admin: bool) -> Session:
        self._forget_expired()
        while len(self._sessions) >= self._max:
            self._sessions.popitem(last=False)
        session = Session(
            id=secrets.token_urlsafe(TOKEN_BYTES),
            csrf=secrets.token_urlsafe(TOKEN_BYTES),
            admin=admin,
            expires_at=self._clock() + self._ttl_s,
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._sessions[session_id]
            return None
        return session

    def close(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _forget_expired(self) -> None:
        now = self._clock()
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.expires_at > now:
                return
            self._sessions.popitem(last=False)
