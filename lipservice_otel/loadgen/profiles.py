"""What generated records say: a fixed record, realistic traffic, or a scripted incident.

A source hands out batches: `batch(n, progress)` returns up to n records (none once it is
exhausted), `progress` being how far the run is, 0.0 to 1.0. Sources are seeded and use no
clock, so the same flags give the same records.

The realistic mix is what a sampler meets in production: a few templates make most of the
volume (Zipf), each with variable fields (ids, durations, addresses), most records inside
traces of a few records, now and then a burst of one error, and now and then a template nobody
has seen before.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Protocol

from lipservice_otel.loadgen.config import GenConfig
from lipservice_otel.loadgen.records import LogSpec

Field = Callable[[random.Random], object]

DEBUG, INFO, WARN = (5, "DEBUG"), (9, "INFO"), (13, "WARN")
ERROR, FATAL = (17, "ERROR"), (21, "FATAL")
# Exponent of the template ranks' volume: rank r gets 1 / r**ZIPF_S of the traffic.
ZIPF_S = 1.2
# Share of records that belong to a trace, and the longest trace in records.
TRACED_SHARE = 0.6
MAX_TRACE_RECORDS = 8
# Realistic profile: chance per record that an error burst starts, its length in records, and
# the share of the burst's records that are the error.
BURST_START_PER_RECORD = 1 / 20_000
BURST_RECORDS = (100, 500)
BURST_ERROR_SHARE = 0.3
# Realistic profile: chance per record of a never-seen template, the share of records the new
# templates take together afterwards, and how many are remembered.
NEW_PATTERN_PER_RECORD = 1 / 5_000
NEW_PATTERN_SHARE = 0.01
MAX_NEW_PATTERNS = 500


class Source(Protocol):
    def batch(self, n: int, progress: float) -> list[LogSpec]: ...


def _int(low: int, high: int) -> Field:
    return lambda rng: rng.randrange(low, high)


def _hex(digits: int) -> Field:
    return lambda rng: f"{rng.getrandbits(4 * digits):0{digits}x}"


def _ms() -> Field:
    return lambda rng: round(rng.expovariate(1 / 40), 2)


def _ip() -> Field:
    return lambda rng: f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _pick(*choices: object) -> Field:
    return lambda rng: rng.choice(choices)


@dataclass(frozen=True, slots=True)
class Template:
    severity: tuple[int, str]
    text: str  # printf-style, one %-conversion per field
    fields: tuple[Field, ...] = ()

    def render(self, rng: random.Random) -> str:
        return self.text % tuple(field(rng) for field in self.fields)


# Ordered by volume: the first is the most frequent (see ZIPF_S).
CATALOG: tuple[Template, ...] = (
    Template(INFO, "GET /api/v1/cart/%d 200 in %sms", (_int(1, 100_000), _ms())),
    Template(DEBUG, "cache hit for key session:%s", (_hex(12),)),
    Template(INFO, "user %d logged in from %s", (_int(1, 100_000), _ip())),
    Template(DEBUG, "db query on orders returned %d rows in %sms", (_int(0, 500), _ms())),
    Template(INFO, "processed batch %s with %d items in %sms", (_hex(8), _int(1, 1000), _ms())),
    Template(INFO, "POST /api/v1/checkout %s in %sms", (_pick(200, 201, 202), _ms())),
    Template(DEBUG, "worker-%d heartbeat ok, queue depth %d", (_int(0, 64), _int(0, 5000))),
    Template(INFO, "order %s created for customer %d", (_hex(10), _int(1, 100_000))),
    Template(WARN, "slow request GET /api/v1/search took %sms", (_int(1000, 9000),)),
    Template(INFO, "consumer group payments committed offset %d on partition %d",
             (_int(0, 10**9), _int(0, 32))),
    Template(DEBUG, "feature flag %s evaluated to %s for user %d",
             (_pick("new-checkout", "dark-mode", "fast-search"), _pick("on", "off"),
              _int(1, 100_000))),
    Template(INFO, "email queued for user %d with template %s",
             (_int(1, 100_000), _pick("welcome", "receipt", "reset"))),
    Template(WARN, "retrying connection to %s:%d (attempt %d of 5)",
             (_ip(), _pick(5432, 6379, 9092), _int(1, 5))),
    Template(INFO, "payment %s authorized amount %d.%d", (_hex(10), _int(1, 999), _int(10, 99))),
    Template(DEBUG, "gc pause %sms heap %dMB", (_ms(), _int(128, 4096))),
    Template(INFO, "inventory sync for warehouse %s updated %d SKUs",
             (_pick("ams1", "fra2", "iad3"), _int(1, 5000))),
    Template(WARN, "rate limit nearly reached for api key %s: %d/1000",
             (_hex(16), _int(800, 1000))),
    Template(INFO, "websocket %s joined room %d", (_hex(12), _int(1, 500))),
    Template(INFO, "scheduled job cleanup-%s finished in %ds", (_hex(6), _int(1, 600))),
    Template(WARN, "deprecated endpoint /v1/legacy called by client %s", (_hex(8),)),
    Template(ERROR, "failed to charge card for order %s: card declined (code %d)",
             (_hex(10), _int(1, 60))),
    Template(ERROR, "database connection pool exhausted after %sms waiting", (_ms(),)),
    Template(ERROR, "unhandled KeyError '%s' in handler /api/v1/cart", (_hex(6),)),
    Template(FATAL, "out of memory: killed worker-%d (rss %dMB)", (_int(0, 64), _int(4096, 8192))),
)  # fmt: skip

_BURST_ERRORS = tuple(t for t in CATALOG if t.severity == ERROR)
_NEW_WORDS = (
    ("reconciling", "rebuilding", "evicting", "migrating", "throttling", "compacting"),
    ("ledger", "index", "tenant", "snapshot", "manifest", "shard", "quota", "webhook"),
    ("entries", "segments", "replicas", "tokens", "leases", "checkpoints", "buckets"),
)


@dataclass(frozen=True, slots=True)
class ScriptedEvent:
    """A change in the incident profile's traffic between two points of the run."""

    name: str
    start: float  # share of the run, 0.0-1.0
    end: float
    share: float  # of the records sent while it lasts
    template: Template


INCIDENT_SCRIPT: tuple[ScriptedEvent, ...] = (
    # A warning (not an error: the severity floor would keep it anyway) suddenly at 50 %.
    ScriptedEvent(
        "spike", 0.4, 0.6, 0.5,
        Template(WARN, "upstream inventory-service returned 503 after %sms", (_ms(),)),
    ),
    # An error pattern that did not exist before it starts.
    ScriptedEvent(
        "new_error", 0.6, 1.0, 0.05,
        Template(ERROR, "payment gateway timeout: provider %s gave no answer within %dms",
                 (_pick("acme-pay", "paybridge"), _int(3000, 9000))),
    ),
)  # fmt: skip


class FixedSource:
    """telemetrygen's record: the same body, severity, ids and attributes every time."""

    def __init__(self, spec: LogSpec) -> None:
        self._spec = spec

    def batch(self, n: int, progress: float) -> list[LogSpec]:
        return [self._spec] * n


class RealisticSource:
    def __init__(self, seed: int, script: Sequence[ScriptedEvent] = (), bursts: bool = True):
        self._rng = random.Random(seed)
        self._cumulative = list(accumulate(1 / rank**ZIPF_S for rank in range(1, len(CATALOG) + 1)))
        self._script = tuple(script)
        self._bursts = bursts
        self._new: list[Template] = []
        self._burst_left = 0
        self._burst: Template = _BURST_ERRORS[0]
        self._trace_left = 0
        self._trace_id = b""

    def batch(self, n: int, progress: float) -> list[LogSpec]:
        rng = self._rng
        active = [event for event in self._script if event.start <= progress < event.end]
        picks = rng.choices(CATALOG, cum_weights=self._cumulative, k=n)
        return [self._record(rng, template, active) for template in picks]

    def _record(self, rng: random.Random, template: Template, active) -> LogSpec:
        template = self._override(rng, template, active)
        severity_number, severity_text = template.severity
        trace_id, span_id = self._ids(rng)
        return LogSpec(template.render(rng), severity_number, severity_text, trace_id, span_id)

    def _override(self, rng: random.Random, template: Template, active) -> Template:
        for event in active:
            if rng.random() < event.share:
                return event.template
        if not self._bursts:
            return template
        if self._burst_left:
            self._burst_left -= 1
            if rng.random() < BURST_ERROR_SHARE:
                return self._burst
        elif rng.random() < BURST_START_PER_RECORD:
            self._burst_left = rng.randrange(*BURST_RECORDS)
            self._burst = rng.choice(_BURST_ERRORS)
        if rng.random() < NEW_PATTERN_PER_RECORD and len(self._new) < MAX_NEW_PATTERNS:
            self._new.append(_new_template(rng))
            return self._new[-1]
        if self._new and rng.random() < NEW_PATTERN_SHARE:
            return rng.choice(self._new)
        return template

    def _ids(self, rng: random.Random) -> tuple[bytes, bytes]:
        if rng.random() >= TRACED_SHARE:
            return b"", b""
        if not self._trace_left:
            self._trace_left = rng.randrange(1, MAX_TRACE_RECORDS + 1)
            self._trace_id = rng.randbytes(16)
        self._trace_left -= 1
        return self._trace_id, rng.randbytes(8)


def _new_template(rng: random.Random) -> Template:
    """A template made of words no catalog entry uses: a pattern the receiver never saw."""
    words = " ".join(rng.choice(choices) for choices in _NEW_WORDS)
    return Template(INFO, f"{words} for request %s", (_hex(12),))


def build_source(config: GenConfig, worker: int, fixed: LogSpec) -> Source:
    seed = config.seed + worker
    if config.profile == "realistic":
        return RealisticSource(seed)
    if config.profile == "incident":
        # No random bursts or new patterns: the scripted ones are the only anomalies.
        return RealisticSource(seed, INCIDENT_SCRIPT, bursts=False)
    return FixedSource(fixed)
