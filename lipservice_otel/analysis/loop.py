"""The analysis loop: the async shell around learning (learn.py) and planning (plan.py).

It takes receivers' interval reports (`ingest`), runs a cycle every `analysis.interval_s`
(learn in a worker thread, ask the LLM advisor when enabled, plan the next version), stores
the new policy version and hands it to every subscriber. One lock keeps the state
single-writer: cycles, regenerations, overrides and a new configured base take it in turn,
while `ingest` fills the next interval. The loop does no network I/O itself: its store,
subscribers and advisor are given to it or built from its config.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from lipservice_otel.analysis.anomaly import Anomaly
from lipservice_otel.analysis.clock import SteadyClock
from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.learn import Interval, fold_report, learn
from lipservice_otel.analysis.llm.advisor import (
    STATUS_DISABLED,
    STATUS_NOT_ASKED,
    Advisor,
    Consultation,
)
from lipservice_otel.analysis.plan import PatternView, Planning, briefs_to_ask, plan
from lipservice_otel.analysis.state import AnalysisState, Override
from lipservice_otel.analysis.tenants import TenantAdmission, tenant_figures
from lipservice_otel.policy.model import Policy
from lipservice_otel.sampling.aggregates import IntervalReport
from lipservice_otel.store import Store
from lipservice_otel.telemetry import Telemetry

log = logging.getLogger(__name__)
TENANT_GAUGES = (
    "lipservice_analysis_tenant_records_per_second",
    "lipservice_analysis_tenant_kept_records_per_second",
    "lipservice_analysis_tenant_budget_records_per_second",
)
T = TypeVar("T")


class Counted(Protocol):
    pattern_id: str
    received: int
    kept: int


class ReportedCounts(Protocol):
    """What an observer reads of a report: an IntervalReport, or (sharded) the Sync message
    as it came off the wire, which is split without being converted."""

    @property
    def counts(self) -> Sequence[Counted]: ...


class LoopObserver(Protocol):
    """Follows the loop without steering it (the live page's history)."""

    def reported(self, report: ReportedCounts) -> None:
        """A receiver's interval report, as it arrives."""

    def cycled(self, anomalies: list[Anomaly]) -> None:
        """A cycle ended, with the anomalies it found."""


class AnalysisLoop:
    def __init__(
        self,
        config: AnalysisConfig,
        store: Store,
        base: Policy,
        clock: Callable[[], float] | None = None,
        telemetry: Telemetry | None = None,
        wall_clock: Callable[[], float] = time.time,
        monotonic_clock: Callable[[], float] = time.monotonic,
        # What its versions are called in the log: a shard's rules are not the policy.
        versions_of: str = "policy",
    ) -> None:
        self._versions_of = versions_of
        self._config = config
        self._store = store
        # Unix seconds that wall-clock steps do not move (clock.py); tests give their own.
        clock = clock or SteadyClock(wall_clock, monotonic_clock)
        self._clock = clock
        self._wall_clock = wall_clock
        self._telemetry = telemetry or Telemetry()
        # What people configured (mode, floor, default rates, exemptions); learned rules go on top.
        self._base = base
        self._planning = Planning.of(config, base)
        self.state = AnalysisState()
        self._pending = Interval()
        # Tenants tracked (at most max_tenants, beyond them `other`), and those with gauges.
        self._tenants = TenantAdmission.of(config.max_tenants, config.tenants, ())
        self._tenant_gauges: set[str] = set()
        self._last_cycle = clock()
        self._subscribers: list[Callable[[Policy], None]] = []
        self._observers: list[LoopObserver] = []
        self.policy: Policy | None = None
        self.anomalies: list[Anomaly] = []
        self._views: dict[str, PatternView] = {}
        self._lock = asyncio.Lock()
        self._advisor = (
            Advisor(config.llm, config.interval_s, clock) if config.llm.enabled else None
        )
        # What asking the model did in the last cycle; the policy summary reports it.
        self.consultation = Consultation(STATUS_DISABLED)

    # ---- lifecycle ----

    async def restore(self) -> None:
        """Resume from the store: the last policy and the learned baselines."""
        self.policy = await self._store.latest_policy()
        blob = await self._store.load_state()
        if blob:
            self.state = AnalysisState.from_bytes(blob)
        self._track_tenants()
        self._last_cycle = self._clock()

    def subscribe(self, callback: Callable[[Policy], None]) -> None:
        self._subscribers.append(callback)
        if self.policy is not None:
            callback(self.policy)

    def observe(self, observer: LoopObserver) -> None:
        self._observers.append(observer)

    def ingest(self, report: IntervalReport) -> None:
        """Add one receiver's interval report to the current cycle."""
        for observer in self._observers:
            observer.reported(report)
        deferred = fold_report(
            self._pending,
            report,
            self.state.patterns,
            self._config.max_new_patterns_per_cycle,
            self._tenants,
        )
        if deferred:
            self._telemetry.counter("lipservice_analysis_deferred_patterns").inc(deferred)

    async def cycle(self) -> Policy | None:
        """One analysis cycle; returns the new policy version when one was published."""
        return await self._publish(learn=True)

    async def regenerate(self) -> Policy | None:
        """A new version from what is known now (overrides applied), without a new interval."""
        return await self._publish(learn=False)

    async def set_base(self, base: Policy) -> Policy | None:
        """People changed the configured policy: publish it under the learned rules now."""
        # Under the lock: a cycle's worker thread plans from the base and its floor buckets.
        async with self._lock:
            self._base = base
            self._planning = Planning.of(self._config, base)
        return await self.regenerate()

    async def adopt(self, policy: Policy) -> None:
        """Take a version another analyzer replica wrote (this one is on standby), if it is
        newer than the one this loop has."""
        async with self._lock:
            # Checked under the lock: the store announces a writer's own version while its
            # cycle is still saving it, and adopting that would send every receiver the
            # version twice and reload the whole state.
            if self.policy is not None and policy.version <= self.policy.version:
                return
            self.policy = policy
            blob = await self._store.load_state()
            if blob:
                self.state = AnalysisState.from_bytes(blob)
            self._track_tenants()
        for callback in self._subscribers:
            callback(policy)

    def from_wall(self, unix_s: float) -> float:
        """An instant on the wall clock (an override's expiry as people give it), on the
        analysis clock: the same distance from now."""
        return self._clock() + (unix_s - self._wall_clock())

    # ---- admin ----

    async def set_override(self, override: Override) -> Policy | None:
        async with self._lock:  # a cycle's worker thread may be reading the overrides
            self.state.overrides[override.key] = override
        return await self.regenerate()

    def patterns(self, service: str = "") -> list[PatternView]:
        views = [v for v in self._views.values() if not service or v.service == service]
        return sorted(views, key=lambda v: v.volume_per_second, reverse=True)

    async def all_patterns(self, service: str = "") -> list[PatternView]:
        """Every pattern the analysis knows, wherever it is kept: here, all of them (sharded,
        app/sharded.py also reads the shards other replicas own)."""
        return self.patterns(service)

    async def inspect(self, read: Callable[[AnalysisState, Policy], T]) -> T:
        """`read(state, policy)` under the lock (a cycle's worker thread changes the state in
        place), with the policy receivers run: the configured base before a learned one. In a
        worker thread: over 50,000 patterns a report takes seconds, which an embedded
        analysis must not take from the receiver sharing this event loop."""
        async with self._lock:
            return await asyncio.to_thread(read, self.state, self.policy or self._base)

    def explain(self, pattern_id: str) -> PatternView | None:
        canonical = self.state.aliases.get(pattern_id, pattern_id)
        return self._views.get(canonical)

    # ---- one cycle ----

    async def _publish(self, learn: bool) -> Policy | None:
        # Learning, merging and planning are CPU work over every known pattern (seconds under
        # a template flood, plus numpy's first import): they run in a worker thread so
        # an embedded analysis loop does not stall the receiver sharing this event loop. The
        # lock keeps state single-writer; ingest() fills a fresh interval meanwhile.
        async with self._lock:
            started = time.perf_counter()
            now = self._clock()
            if learn:
                elapsed = max(now - self._last_cycle, 1e-3)
                self._last_cycle = now
                pending, self._pending = self._pending, Interval()
                await asyncio.to_thread(self._learn, pending, now, elapsed)
                self._track_tenants()
                await self._consult(now)
            elif self._advisor is not None:
                self.consultation = Consultation(STATUS_NOT_ASKED)
            policy = await asyncio.to_thread(self._plan, now, not learn)
            self._count_tenants()
            if self._store.keeps_state:
                await self._store.save_state(await asyncio.to_thread(self.state.to_bytes))
            if policy is not None:
                await self._store.save_policy(policy)
                self.policy = policy
            if learn:
                self._telemetry.counter("lipservice_analysis_cycles").inc()
                self._telemetry.gauge("lipservice_analysis_cycle_duration").set(
                    time.perf_counter() - started
                )
        if learn:
            for observer in self._observers:
                observer.cycled(self.anomalies)
        if policy is None:
            return None
        for callback in self._subscribers:
            callback(policy)
        log.info("%s version %d: %s", self._versions_of, policy.version, policy.summary)
        return policy

    def _learn(self, pending: Interval, now: float, elapsed: float) -> None:
        learned = learn(
            self.state, pending, self._config, self._planning.floor_buckets, now, elapsed
        )
        self.anomalies = learned.anomalies
        if pending.tenant_overflow_patterns:
            self._telemetry.counter("lipservice_analysis_tenant_overflow_patterns").inc(
                pending.tenant_overflow_patterns
            )
        forgotten = self._telemetry.counter
        forgotten("lipservice_analysis_forgotten_patterns", reason="ttl").inc(
            learned.forgotten_by_ttl
        )
        if learned.forgotten_by_max_patterns:
            forgotten("lipservice_analysis_forgotten_patterns", reason="max_patterns").inc(
                learned.forgotten_by_max_patterns
            )
        for anomaly in learned.anomalies:
            log.info(
                "anomaly %s in %s pattern %s (%s, confidence %.2f): %s",
                anomaly.kind,
                anomaly.service,
                anomaly.pattern_id,
                anomaly.severity,
                anomaly.confidence,
                anomaly.detail,
            )

    def _track_tenants(self) -> None:
        """The tenants tracked: those of the patterns known, or taken up since the cycle began
        (on the event loop's thread, where ingest() fills the interval)."""
        seen = {p.tenant for p in self.state.patterns.values()}
        seen.update(entry[3] for entry in self._pending.patterns.values())
        self._tenants = TenantAdmission.of(self._config.max_tenants, self._config.tenants, seen)

    def _count_tenants(self) -> None:
        """Per tenant: records/s in, the budget, and what the rates keep; gauges of tenants
        gone are removed, so there are never more than the tenants tracked."""
        figures = tenant_figures(
            (v.tenant, v.volume_per_second, v.kept_per_second, v.tenant_budget_per_second)
            for v in self._views.values()
        )
        gauge = self._telemetry.gauge
        for tenant, (volume, kept, budget) in figures.items():
            gauge("lipservice_analysis_tenant_records_per_second", tenant=tenant).set(volume)
            gauge("lipservice_analysis_tenant_kept_records_per_second", tenant=tenant).set(kept)
            gauge("lipservice_analysis_tenant_budget_records_per_second", tenant=tenant).set(budget)
        for tenant in self._tenant_gauges - figures.keys():
            for name in TENANT_GAUGES:
                self._telemetry.remove(name, tenant=tenant)
        self._tenant_gauges = set(figures)

    async def _consult(self, now: float) -> None:
        if self._advisor is None:
            return
        briefs = briefs_to_ask(self.state, self._planning, now)
        self.consultation = await self._advisor.advise(briefs)
        self._telemetry.counter("lipservice_analysis_llm_calls").inc(self.consultation.calls)
        self._telemetry.counter("lipservice_analysis_llm_tokens").inc(self.consultation.tokens)
        for judgement in self.consultation.judgements:
            self.state.judgements[judgement.pattern_id] = judgement

    def _plan(self, now: float, force: bool) -> Policy | None:
        policy, self._views = plan(
            self.state,
            self._planning,
            self._base,
            self.policy,
            self.consultation,
            len(self.anomalies),
            now,
            force,
        )
        return policy
