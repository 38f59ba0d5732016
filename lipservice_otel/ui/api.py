"""The JSON behind the live page, at /api/... (each route is described in docs/ui.md).

The handlers read what the analysis loop, its store and the page's history hold; the one that
changes anything, `POST /api/pin`, takes the path `lipservice-otel policy pin` takes
(`AnalysisLoop.set_override`, as the control plane's `SetOverride`). The documents are built
by the pure functions below the handlers.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from aiohttp import web

from lipservice_otel.analysis.loop import AnalysisLoop
from lipservice_otel.analysis.state import Override
from lipservice_otel.policy.model import Policy
from lipservice_otel.policy.reasons import REASON_OVERRIDE
from lipservice_otel.report.current import CurrentSavings
from lipservice_otel.report.savings import SavingsReport, savings_to_dict
from lipservice_otel.store import Store, StoreUnavailable
from lipservice_otel.ui.access import Access, Caller
from lipservice_otel.ui.history import History, Point, SeenAnomaly
from lipservice_otel.ui.session import Session

SORT_KEYS = {
    "volume": "records_per_second",
    "bytes": "bytes_per_second",
    "rate": "rate",
}
DEFAULT_PATTERNS_LIMIT = 200
MAX_PATTERNS_LIMIT = 5000
DEFAULT_HISTORY_LIMIT = 20
MAX_HISTORY_LIMIT = 100
# The longest pin the page sets; `policy pin` can pin for ever, a click should not.
MAX_PIN_S = 30 * 86_400.0
MAX_PATTERN_ID_CHARS = 256
MAX_NOTE_CHARS = 256
DEFAULT_PIN_NOTE = "pinned on the live page"


class BadRequest(ValueError):
    """A request the API cannot take; the message says which field and why (400)."""


@dataclass(frozen=True, slots=True)
class Pin:
    pattern_id: str
    rate: float
    for_s: float
    note: str


class Api:
    def __init__(
        self,
        loop: AnalysisLoop,
        store: Store,
        history: History,
        access: Access,
        savings: CurrentSavings,
        set_cookie: Callable[[web.StreamResponse, Session], None],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._loop = loop
        self._store = store
        self._history = history
        self._access = access
        # One report per cycle and policy version, however many tabs poll the page.
        self._savings = savings
        self._set_cookie = set_cookie
        self._wall_clock = wall_clock

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/session", self.session),
            web.get("/api/summary", self.summary),
            web.get("/api/patterns", self.patterns),
            web.get("/api/series", self.series),
            web.get("/api/history", self.policy_history),
            web.get("/api/anomalies", self.anomalies),
            web.get("/api/pins", self.pins),
            web.post("/api/pin", self.pin),
        ]

    # ---- handlers ----

    async def session(self, request: web.Request) -> web.Response:
        """Who the page is for, and the CSRF token its changes carry."""
        caller = self._caller(request)
        session = caller.session
        # No bearer token is set and the browser has no session yet: one without sign-in,
        # for its CSRF token. A caller with a bearer header is no browser and needs none.
        opened = session is None and request.headers.get("Authorization") is None
        if opened:
            session = self._access.open_session()
        response = web.json_response(
            {
                "sign_in_required": self._access.sign_in_required,
                # A token is set: signing in with it can give more (the admin token pins).
                "sign_in_available": self._access.tokens.any,
                "signed_in": (session is not None and not opened and self._access.sign_in_required),
                "admin": session.admin if session is not None else caller.admin,
                "csrf": session.csrf if session is not None else None,
            }
        )
        if opened:
            self._set_cookie(response, session)
        return response

    async def summary(self, request: web.Request) -> web.Response:
        self._caller(request)
        report = await self._savings.current()
        policy = self._loop.policy
        return web.json_response(
            summary_document(
                report,
                policy,
                self._history.series(),
                self._history.last_cycle_at,
                self._history.bucket_s,
            )
        )

    async def patterns(self, request: web.Request) -> web.Response:
        self._caller(request)
        sort = request.query.get("sort", "volume")
        order = request.query.get("order", "desc")
        if sort not in SORT_KEYS:
            raise _bad(f"sort: one of {', '.join(SORT_KEYS)}, got {sort!r}")
        if order not in ("asc", "desc"):
            raise _bad(f"order: asc or desc, got {order!r}")
        limit = _int_query(request, "limit", DEFAULT_PATTERNS_LIMIT, MAX_PATTERNS_LIMIT)
        rows = pattern_rows(await self._savings.current())
        rows.sort(key=lambda row: (row[SORT_KEYS[sort]], row["pattern_id"]))
        if order == "desc":
            rows.reverse()
        members = {v.pattern_id: v.merged_signatures for v in self._loop.patterns()}
        shown = with_sparklines(rows[:limit], members, self._history.sparkline)
        return web.json_response(
            {
                "sort": sort,
                "order": order,
                "total": len(rows),
                "bucket_s": self._history.bucket_s,
                "patterns": shown,
            }
        )

    async def series(self, request: web.Request) -> web.Response:
        self._caller(request)
        return web.json_response(series_document(self._history.series(), self._history.bucket_s))

    async def policy_history(self, request: web.Request) -> web.Response:
        self._caller(request)
        limit = _int_query(request, "limit", DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT)
        try:
            versions = await self._store.history(limit)
        except StoreUnavailable as exc:
            raise _unavailable(exc) from None
        return web.json_response({"versions": [version_document(p) for p in versions]})

    async def anomalies(self, request: web.Request) -> web.Response:
        self._caller(request)
        seen = self._history.anomalies()
        return web.json_response({"anomalies": [anomaly_document(a) for a in seen]})

    async def pins(self, request: web.Request) -> web.Response:
        self._caller(request)
        now = self._wall_clock()
        overrides = list(self._loop.state.overrides.values())
        to_wall = wall_converter(self._loop.from_wall, now)
        return web.json_response(
            {"pins": pins_document(overrides, self._loop.policy, to_wall, now)}
        )

    async def pin(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        refusal = self._access.change_refusal(request, caller)
        if refusal is not None:
            raise _json_error(web.HTTPForbidden, refusal)
        try:
            body = await request.json()
        except ValueError:
            raise _bad("the body must be a JSON object") from None
        try:
            pin = parse_pin(body)
        except BadRequest as exc:
            raise _bad(str(exc)) from None
        expires = self._wall_clock() + pin.for_s
        override = Override(
            key=pin.pattern_id,
            rate=pin.rate,
            # The expiry on the analysis clock, as SetOverride converts a person's wall time.
            expires_at=self._loop.from_wall(expires),
            note=pin.note,
        )
        try:
            policy = await self._loop.set_override(override)
        except StoreUnavailable as exc:
            raise _unavailable(exc) from None
        policy = policy or self._loop.policy
        return web.json_response(
            {
                "policy_version": policy.version if policy is not None else 0,
                "pattern_id": pin.pattern_id,
                "rate": pin.rate,
                "expires_unix": expires,
            }
        )

    # ---- helpers ----

    def _caller(self, request: web.Request) -> Caller:
        caller = self._access.caller(request)
        if caller is None:
            raise _json_error(web.HTTPUnauthorized, "sign in (or send Authorization: Bearer)")
        return caller


# ---- documents ----


def summary_document(
    report: SavingsReport,
    policy: Policy | None,
    points: list[Point],
    last_cycle_at: float | None,
    bucket_s: float,
) -> dict:
    savings = savings_to_dict(report)
    received = sum(p.received for p in points)
    kept = sum(p.kept for p in points)
    return {
        "policy_version": policy.version if policy is not None else 0,
        "mode": report.mode,
        "generator": policy.generator if policy is not None else "",
        "last_cycle_unix": last_cycle_at,
        "window": {
            "seconds": len(points) * bucket_s,
            "received": received,
            "kept": kept,
            "dropped": received - kept,
        },
        "savings": {
            **{k: v for k, v in savings.items() if k != "services"},
            "services": [
                {k: v for k, v in s.items() if k != "patterns"} for s in savings["services"]
            ],
        },
    }


def pattern_rows(report: SavingsReport) -> list[dict]:
    """One row per canonical pattern: its savings figures."""
    return [
        {
            "tenant": p.tenant,
            "service": p.service,
            "pattern_id": p.pattern_id,
            "template": p.template,
            "example": p.example,
            "rate": p.rate,
            "reason": p.reason,
            "records_per_second": p.figures.records_per_second,
            "bytes_per_second": p.figures.bytes_per_second,
            "kept_records_per_second": p.figures.kept_records_per_second,
            "record_share": p.record_share,
        }
        for service in report.services
        for p in service.patterns
    ]


def with_sparklines(
    rows: list[dict],
    members: Mapping[str, Iterable[str]],
    sparkline: Callable[[Iterable[str]], list[int] | None],
) -> list[dict]:
    """The rows with their sparkline over the history window (the pattern's member
    signatures together) and its sum; both None when it has no series."""
    drawn = []
    for row in rows:
        pid = row["pattern_id"]
        line = sparkline({pid, *members.get(pid, ())})
        window = sum(line) if line is not None else None
        drawn.append({**row, "window_records": window, "sparkline": line})
    return drawn


def series_document(points: list[Point], bucket_s: float) -> dict:
    return {
        "bucket_s": bucket_s,
        "points": [
            {"start_unix": p.start, "received": p.received, "kept": p.kept, "dropped": p.dropped}
            for p in points
        ],
    }


def version_document(policy: Policy) -> dict:
    return {
        "version": policy.version,
        "mode": policy.mode,
        "generator": policy.generator,
        "created_unix": policy.created_unix_nano / 1e9 if policy.created_unix_nano else None,
        "summary": policy.summary,
    }


def anomaly_document(seen: SeenAnomaly) -> dict:
    a = seen.anomaly
    return {
        "at_unix": seen.at,
        "kind": a.kind,
        "service": a.service,
        "pattern_id": a.pattern_id,
        "signature_id": a.signature_id,
        "severity": a.severity,
        "confidence": a.confidence,
        "detail": a.detail,
    }


def wall_converter(from_wall: Callable[[float], float], now: float) -> Callable[[float], float]:
    """The inverse of AnalysisLoop.from_wall at `now`: an analysis-clock instant on the wall."""
    offset = now - from_wall(now)
    return lambda instant: instant + offset


def pins_document(
    overrides: Iterable[Override],
    policy: Policy | None,
    to_wall: Callable[[float], float],
    now: float,
) -> list[dict]:
    """The rate pins still in force, soonest to expire first (those without expiry last)."""
    pins = []
    for override in overrides:
        if override.rate is None:
            continue  # an exemption, not a pin
        expires = to_wall(override.expires_at) if override.expires_at else None
        if expires is not None and expires <= now:
            continue
        rule = policy.pattern_rules.get(override.key) if policy is not None else None
        pins.append(
            {
                "pattern_id": override.key,
                "rate": override.rate,
                "expires_unix": expires,
                "note": override.note,
                "in_policy": rule is not None and rule.reason == REASON_OVERRIDE,
            }
        )
    pins.sort(key=lambda pin: (pin["expires_unix"] is None, pin["expires_unix"] or 0.0))
    return pins


def parse_pin(body: object) -> Pin:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - {"pattern_id", "rate", "for_s", "note"})
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field (allowed: for_s, note, pattern_id, rate)")
    pattern_id = body.get("pattern_id")
    if not isinstance(pattern_id, str) or not 0 < len(pattern_id) <= MAX_PATTERN_ID_CHARS:
        raise BadRequest(f"pattern_id: a string of 1-{MAX_PATTERN_ID_CHARS} characters")
    rate = _number(body.get("rate"), "rate")
    if not 0 <= rate <= 1:
        raise BadRequest(f"rate: must be 0-1, got {rate:g}")
    for_s = _number(body.get("for_s"), "for_s")
    if not 0 < for_s <= MAX_PIN_S:
        raise BadRequest(f"for_s: must be > 0 and <= {MAX_PIN_S:.0f} s, got {for_s:g}")
    note = body.get("note", DEFAULT_PIN_NOTE)
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise BadRequest(f"note: a string of at most {MAX_NOTE_CHARS} characters")
    return Pin(pattern_id, rate, for_s, note or DEFAULT_PIN_NOTE)


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"{name}: a finite number, got {value!r}")
    return float(value)


def _int_query(request: web.Request, name: str, default: int, most: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise _bad(f"{name}: an integer 1-{most}, got {raw!r}")
    return int(raw)


def _json_error(kind: type[web.HTTPException], message: str) -> web.HTTPException:
    return kind(text=json.dumps({"error": message}), content_type="application/json")


def _bad(message: str) -> web.HTTPException:
    return _json_error(web.HTTPBadRequest, message)


def _unavailable(exc: Exception) -> web.HTTPException:
    return _json_error(web.HTTPServiceUnavailable, f"policy store: {exc}")
