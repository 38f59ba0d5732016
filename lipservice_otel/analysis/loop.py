"""The analysis loop: fold receivers' interval reports, learn, and publish new policies.

Each cycle (`analysis.interval_s`):

1. sum the reports received since the last cycle per signature pattern; patterns not known
   yet are taken up to `max_new_patterns_per_cycle`, loudest first, and the rest are left
   for a later cycle (counted), so a flood of distinct templates costs bounded memory;
2. merge templates that differ only in word-valued variables (patterns.py) into canonical
   patterns;
3. detect anomalies against the moving baselines: spikes, new patterns, error surges; each
   boosts its pattern to rate 1.0 for `anomaly_cooldown_s`;
4. update the baselines;
5. when `analysis.llm` is enabled, ask the LLM advisor (llm.py) about patterns without a
   fresh judgement;
6. allocate each service's keep budget across its patterns (rules.py), honouring overrides
   and weighing in the model's judgements;
7. forget patterns past `pattern_ttl_s` or beyond `max_patterns` (least recently seen first),
   with their boosts and judgements;
8. when the rules changed, store a new policy version and hand it to every subscriber.

The loop does no network I/O itself: its store, subscribers and advisor are given to it or
built from its config.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from lipservice_otel.analysis.anomaly import Anomaly, Baseline, detect_error_surge, detect_spike
from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.llm.advisor import (
    STATUS_DISABLED,
    STATUS_NOT_ASKED,
    Advisor,
    Consultation,
)
from lipservice_otel.analysis.llm.judgement import Judgement, PatternBrief, fingerprint
from lipservice_otel.analysis.patterns import merge_by_service
from lipservice_otel.analysis.rules import ErrorLikeFloor, PatternLoad, allocate_service
from lipservice_otel.analysis.state import AnalysisState, Override, PatternState
from lipservice_otel.policy.model import SEVERITY_LEVELS, PatternRule, Policy
from lipservice_otel.policy.reasons import (
    BOOST_REASONS,
    KIND_ERROR_SURGE,
    KIND_NEW_PATTERN,
    KIND_SPIKE,
    REASON_OVERRIDE,
)
from lipservice_otel.sampling.aggregates import IntervalReport
from lipservice_otel.store import Store
from lipservice_otel.telemetry import Telemetry
from lipservice_otel.text.error_words import DEFAULT_ERROR_WORDS, compile_error_words

log = logging.getLogger(__name__)

MAX_EXAMPLES = 3
# The last counts of every pattern without records in an interval (never changed in place).
_NO_COUNTS: dict[str, int] = {}


@dataclass(slots=True)
class _Interval:
    """Reports folded since the last cycle."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # pid -> bucket -> n
    patterns: dict[str, tuple[str, str, list[str]]] = field(default_factory=dict)
    overflow_records: int = 0
    reports: int = 0
    new_patterns: int = 0  # of `patterns`, those the analysis did not know when they came


@dataclass(frozen=True, slots=True)
class PatternView:
    """What `policy show` / `ListPatterns` shows of a canonical pattern."""

    pattern_id: str
    service: str
    template: str
    examples: tuple[str, ...]
    volume_per_second: float
    error_share: float
    rate: float
    reason: str
    explanation: str
    first_seen: float
    last_seen: float
    merged_signatures: tuple[str, ...]


class AnalysisLoop:
    def __init__(
        self,
        config: AnalysisConfig,
        store: Store,
        base: Policy,
        clock: Callable[[], float] = time.time,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._clock = clock
        self._telemetry = telemetry or Telemetry()
        # What people configured (mode, floor, default rates, exemptions); learned rules go on top.
        self._base = base
        self._floor_buckets = floor_buckets(base.severity_floor)
        self._error_like_floor = (
            ErrorLikeFloor(config.error_like_min_rate, config.error_like_min_examples_per_interval)
            if config.error_like
            else None
        )
        words = tuple(config.error_like_words) or DEFAULT_ERROR_WORDS
        self._error_like_words = compile_error_words(words)
        self.state = AnalysisState()
        self._pending = _Interval()
        self._last_cycle = clock()
        self._subscribers: list[Callable[[Policy], None]] = []
        self.policy: Policy | None = None
        self.anomalies: list[Anomaly] = []
        self._boost_values: dict[str, tuple[str, float]] = {}
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
        self._last_cycle = self._clock()

    def subscribe(self, callback: Callable[[Policy], None]) -> None:
        self._subscribers.append(callback)
        if self.policy is not None:
            callback(self.policy)

    def ingest(self, report: IntervalReport) -> None:
        """Add one receiver's interval report to the current cycle."""
        pending = self._pending
        pending.reports += 1
        pending.overflow_records += report.overflow_records
        # Read while a cycle's worker thread may be adding and forgetting patterns: a pattern
        # it is learning right now may count as new once more, which costs one place.
        known = self.state.patterns
        new = [pid for pid in report.patterns if pid not in pending.patterns and pid not in known]
        deferred = self._defer(
            report, new, self._config.max_new_patterns_per_cycle - pending.new_patterns
        )
        pending.new_patterns += len(new) - len(deferred)
        for pid, info in report.patterns.items():
            if pid in deferred:
                continue
            seen = pending.patterns.get(pid)
            if seen is None:
                pending.patterns[pid] = (info.service, info.template, list(info.examples))
            elif len(seen[2]) < MAX_EXAMPLES:
                seen[2].extend(info.examples[: MAX_EXAMPLES - len(seen[2])])
        for counts in report.counts:
            pid = counts.pattern_id
            if pid not in pending.patterns and pid not in known:
                continue  # deferred, or counted without a template (`other`): nothing to learn
            buckets = pending.counts.setdefault(pid, {})
            buckets[counts.severity_bucket] = (
                buckets.get(counts.severity_bucket, 0) + counts.received
            )

    def _defer(self, report: IntervalReport, new: list[str], room: int) -> set[str]:
        """The new patterns of `report` over this cycle's room: all but the loudest `room`."""
        if len(new) <= room:
            return set()
        volumes = dict.fromkeys(new, 0)
        for counts in report.counts:
            if counts.pattern_id in volumes:
                volumes[counts.pattern_id] += counts.received
        deferred = volumes.keys() - heapq.nlargest(max(room, 0), new, key=volumes.__getitem__)
        self._telemetry.counter("lipservice_analysis_deferred_patterns").inc(len(deferred))
        return deferred

    async def cycle(self) -> Policy | None:
        """One analysis cycle; returns the new policy version when one was published."""
        return await self._publish(learn=True)

    async def regenerate(self) -> Policy | None:
        """A new version from what is known now (overrides applied), without a new interval."""
        return await self._publish(learn=False)

    async def _publish(self, learn: bool) -> Policy | None:
        # Learning, merging and planning are CPU work over every known pattern (seconds under
        # a template flood, plus numpy's first import): they run in a worker thread so
        # an embedded analysis loop does not stall the receiver sharing this event loop. The
        # lock keeps state single-writer; ingest() fills a fresh interval meanwhile.
        async with self._lock:
            now = self._clock()
            if learn:
                elapsed = max(now - self._last_cycle, 1e-3)
                self._last_cycle = now
                pending, self._pending = self._pending, _Interval()
                await asyncio.to_thread(self._learn, pending, now, elapsed)
                await self._consult(now)
            elif self._advisor is not None:
                self.consultation = Consultation(STATUS_NOT_ASKED)
            policy = await asyncio.to_thread(self._plan, now, not learn)
            if self._store.keeps_state:
                await self._store.save_state(await asyncio.to_thread(self.state.to_bytes))
            if policy is None:
                return None
            await self._store.save_policy(policy)
            self.policy = policy
        for callback in self._subscribers:
            callback(policy)
        log.info("policy version %d: %s", policy.version, policy.summary)
        return policy

    async def set_base(self, base: Policy) -> Policy | None:
        """People changed the configured policy: publish it under the learned rules now."""
        self._base = base
        self._floor_buckets = floor_buckets(base.severity_floor)
        return await self.regenerate()

    async def adopt(self, policy: Policy) -> None:
        """Take a version another analyzer replica wrote (this one is on standby)."""
        async with self._lock:
            self.policy = policy
            blob = await self._store.load_state()
            if blob:
                self.state = AnalysisState.from_bytes(blob)
        for callback in self._subscribers:
            callback(policy)

    # ---- admin ----

    async def set_override(self, override: Override) -> Policy | None:
        async with self._lock:  # a cycle's worker thread may be reading the overrides
            self.state.overrides[override.key] = override
        return await self.regenerate()

    def patterns(self, service: str = "") -> list[PatternView]:
        views = [v for v in self._views.values() if not service or v.service == service]
        return sorted(views, key=lambda v: v.volume_per_second, reverse=True)

    def explain(self, pattern_id: str) -> PatternView | None:
        canonical = self.state.aliases.get(pattern_id, pattern_id)
        return self._views.get(canonical)

    # ---- learning ----

    def _learn(self, pending: _Interval, now: float, elapsed: float) -> None:
        config = self._config
        state = self.state
        warmed_up = state.cycles > 0
        known_before = set(state.patterns)
        new_patterns = []
        for pid, (service, template, examples) in pending.patterns.items():
            pattern = state.patterns.get(pid)
            if pattern is None:
                pattern = state.patterns[pid] = PatternState(pid, service, template, now)
                if warmed_up:
                    new_patterns.append(pattern)
            for example in examples:
                if len(pattern.examples) < MAX_EXAMPLES and example not in pattern.examples:
                    pattern.examples.append(example)
        for pattern in state.patterns.values():
            buckets = pending.counts.get(pattern.pattern_id, _NO_COUNTS)
            pattern.last_counts = buckets
            if buckets:
                pattern.last_seen = now
        if new_patterns or not state.cycles:
            self._merge()
        self.anomalies = []
        self._boost_values = {}
        self._detect(elapsed, now)
        groups = self._groups()
        for pattern in new_patterns:
            canonical = state.aliases.get(pattern.pattern_id, pattern.pattern_id)
            if any(m.pattern_id in known_before for m in groups[canonical]):
                continue  # a new spelling of a known pattern (merged), not a new pattern
            self._boost(
                Anomaly(KIND_NEW_PATTERN, pattern.service, canonical, "warning", 1.0, "first seen"),
                now,
            )
        for pattern in state.patterns.values():
            pattern.rate.update(sum(pattern.last_counts.values()) / elapsed, config.ema_alpha)
        for service, share in self._error_shares().items():
            state.error_share.setdefault(service, Baseline()).update(share[0], config.ema_alpha)
        if pending.reports:
            # Only cycles that saw traffic count: "new" means new since traffic was first seen.
            state.cycles += 1
        self._forget(now)

    def _merge(self) -> None:
        state = self.state
        if not self._config.merge_patterns:
            state.aliases, state.canonical_templates = {}, {}
            return
        patterns = [(p.pattern_id, p.service, p.template) for p in state.patterns.values()]
        state.aliases, state.canonical_templates = merge_by_service(patterns)

    def _groups(self) -> dict[str, list[PatternState]]:
        groups: dict[str, list[PatternState]] = {}
        for pattern in self.state.patterns.values():
            canonical = self.state.aliases.get(pattern.pattern_id, pattern.pattern_id)
            groups.setdefault(canonical, []).append(pattern)
        return groups

    def _detect(self, elapsed: float, now: float) -> None:
        config = self._config
        for canonical, members in self._groups().items():
            count = sum(sum(m.last_counts.values()) for m in members)
            baseline = Baseline(
                mean=sum(m.rate.mean for m in members),
                variance=sum(m.rate.variance for m in members),
                samples=max(m.rate.samples for m in members),
            )
            found = detect_spike(
                baseline,
                count / elapsed,
                count,
                elapsed,
                config.spike_ratio,
                config.spike_z,
                config.spike_min_records,
            )
            if found:
                severity, confidence, detail = found
                self._boost(
                    Anomaly(
                        KIND_SPIKE, members[0].service, canonical, severity, confidence, detail
                    ),
                    now,
                )
        for service, (share, errors) in self._error_shares().items():
            baseline = self.state.error_share.get(service, Baseline())
            found = detect_error_surge(
                baseline, share, errors, config.surge_min_share_increase, config.spike_min_records
            )
            if not found:
                continue
            severity, confidence, detail = found
            for canonical, members in self._groups().items():
                if members[0].service == service and any(
                    m.last_counts.get(b) for m in members for b in self._floor_buckets
                ):
                    self._boost(
                        Anomaly(KIND_ERROR_SURGE, service, canonical, severity, confidence, detail),
                        now,
                    )

    def _error_shares(self) -> dict[str, tuple[float, int]]:
        totals: dict[str, list[int]] = {}
        for pattern in self.state.patterns.values():
            if not pattern.last_counts:
                continue
            entry = totals.setdefault(pattern.service, [0, 0])
            entry[0] += sum(pattern.last_counts.values())
            entry[1] += sum(pattern.last_counts.get(b, 0) for b in self._floor_buckets)
        return {s: (errors / total, errors) for s, (total, errors) in totals.items() if total}

    def _boost(self, anomaly: Anomaly, now: float) -> None:
        self.anomalies.append(anomaly)
        # One (reason, until) per kind and cycle, shared by its boosts (a flood makes many).
        value = self._boost_values.get(anomaly.kind)
        if value is None:
            value = (BOOST_REASONS[anomaly.kind], now + self._config.anomaly_cooldown_s)
            self._boost_values[anomaly.kind] = value
        self.state.boosts[anomaly.pattern_id] = value
        log.info(
            "anomaly %s in %s pattern %s (%s, confidence %.2f): %s",
            anomaly.kind,
            anomaly.service,
            anomaly.pattern_id,
            anomaly.severity,
            anomaly.confidence,
            anomaly.detail,
        )

    def _forget(self, now: float) -> None:
        state = self.state
        oldest = now - self._config.pattern_ttl_s
        stale = [pid for pid, p in state.patterns.items() if p.last_seen < oldest]
        forgotten = self._telemetry.counter
        forgotten("lipservice_analysis_forgotten_patterns", reason="ttl").inc(len(stale))
        overflow = len(state.patterns) - len(stale) - self._config.max_patterns
        if overflow > 0:
            # Least recently seen first and, among patterns seen as lately, the quietest: a
            # flood of one-off templates must not push out the patterns seen all along (they
            # would come back as new, boosted to rate 1.0).
            by_age = sorted(
                (p for p in state.patterns.values() if p.last_seen >= oldest),
                key=lambda p: (p.last_seen, p.rate.mean),
            )
            stale.extend(p.pattern_id for p in by_age[:overflow])
            forgotten("lipservice_analysis_forgotten_patterns", reason="max_patterns").inc(overflow)
        for pid in stale:
            del state.patterns[pid]
        # Boosts and judgements go with their patterns: a pattern forgotten and seen again is
        # new again. So neither outnumbers the patterns tracked (at most max_patterns).
        canonical = {state.aliases.get(pid, pid) for pid in state.patterns}
        state.boosts = {
            pid: b for pid, b in state.boosts.items() if b[1] > now and pid in canonical
        }
        state.overrides = {
            k: o for k, o in state.overrides.items() if not o.expires_at or o.expires_at > now
        }
        expiry = now - self._config.llm.judgement_ttl_s
        state.judgements = {
            pid: j
            for pid, j in state.judgements.items()
            if pid in canonical and j.judged_at > expiry
        }

    # ---- the LLM advisor ----

    async def _consult(self, now: float) -> None:
        if self._advisor is None:
            return
        briefs = [
            self._brief(canonical, members)
            for canonical, members in self._groups().items()
            if self._advice(canonical, members, now) is None and not self._overridden(canonical)
        ]
        # Loudest first: when the budget or the clock runs out, the patterns that weigh most
        # in the allocation have been judged.
        briefs.sort(key=lambda b: b.volume_per_second, reverse=True)
        self.consultation = await self._advisor.advise(briefs)
        for judgement in self.consultation.judgements:
            self.state.judgements[judgement.pattern_id] = judgement

    def _advice(self, canonical: str, members: list[PatternState], now: float) -> Judgement | None:
        """The model's judgement of a pattern while it is fresh and about its current template."""
        judgement = self.state.judgements.get(canonical)
        if (
            self._advisor is None
            or judgement is None
            or judgement.judged_at <= now - self._config.llm.judgement_ttl_s
            or judgement.fingerprint != fingerprint(self._template(canonical, members))
        ):
            return None
        return judgement

    def _overridden(self, canonical: str) -> bool:
        override = self.state.overrides.get(canonical)
        return override is not None and override.rate is not None

    def _brief(self, canonical: str, members: list[PatternState]) -> PatternBrief:
        counts: dict[str, int] = {}
        for member in members:
            for bucket, n in member.last_counts.items():
                counts[bucket] = counts.get(bucket, 0) + n
        total = sum(counts.values())
        return PatternBrief(
            pattern_id=canonical,
            service=members[0].service,
            template=self._template(canonical, members),
            examples=tuple(e for m in members for e in m.examples)[:MAX_EXAMPLES],
            severity_mix={b: n / total for b, n in counts.items()} if total else {},
            volume_per_second=sum(m.rate.mean for m in members),
        )

    def _template(self, canonical: str, members: list[PatternState]) -> str:
        return self.state.canonical_templates.get(canonical, members[0].template)

    # ---- planning ----

    def _plan(self, now: float, force: bool) -> Policy | None:
        config = self._config
        groups = self._groups()
        by_service: dict[str, list[PatternLoad]] = {}
        advised = 0
        for canonical, members in groups.items():
            override = self.state.overrides.get(canonical)
            boost = self.state.boosts.get(canonical)
            fixed_rate, fixed_reason = None, ""
            if override is not None and override.rate is not None:
                fixed_rate, fixed_reason = override.rate, REASON_OVERRIDE
            elif boost is not None:
                fixed_rate, fixed_reason = 1.0, boost[0]
            floor = sum(m.rate.mean * _floor_share(m, self._floor_buckets) for m in members)
            total = sum(m.rate.mean for m in members)
            error_like = any(self._error_like(m) for m in members)
            # A person's override or an anomaly boost outranks the model.
            advice = self._advice(canonical, members, now) if fixed_rate is None else None
            advised += advice is not None
            by_service.setdefault(members[0].service, []).append(
                PatternLoad(
                    canonical,
                    max(total - floor, 0.0),
                    floor,
                    fixed_rate,
                    fixed_reason,
                    error_like,
                    advice,
                )
            )
        rules: dict[str, PatternRule] = {}
        views: dict[str, PatternView] = {}
        for service, loads in by_service.items():
            allocations = allocate_service(
                loads,
                config.target_reduction,
                config.target_records_per_second.get(service),
                config.min_examples_per_interval,
                config.interval_s,
                self._error_like_floor,
            )
            for load in loads:
                allocation = allocations[load.pattern_id]
                volume = load.sampled_per_second + load.floor_per_second
                rules[load.pattern_id] = PatternRule(allocation.rate, allocation.reason, volume)
                views[load.pattern_id] = self._view(
                    load.pattern_id, groups[load.pattern_id], allocation, volume
                )
        self._views = views
        aliases = {pid: c for pid, c in self.state.aliases.items() if pid != c}
        overridden = tuple(o.exemption for o in self.state.overrides.values() if o.exemption)
        previous = self.policy
        # Above the configured base's version too: receivers already run the base (version 1
        # from the file) before the first learned policy, and a version says which one applies.
        version = max(previous.version if previous else 0, self._base.version) + 1
        candidate = replace(
            self._base,
            version=version,
            pattern_rules=rules,
            pattern_aliases=aliases,
            exemptions=self._base.exemptions + overridden,
            learned=True,
            generator="rules+llm" if advised else "rules",
            created_unix_nano=int(now * 1e9),
        )
        changes = describe_changes(previous, candidate)
        if previous is not None and not changes and not force:
            return None
        llm = self.consultation.describe()
        if advised:
            llm += f", judgements applied to {advised} patterns"
        summary = (
            f"{len(rules)} patterns in {len(by_service)} services, "
            f"{len(self.anomalies)} anomalies; {llm}; {changes or 'no change'}"
        )
        return replace(candidate, summary=summary)

    def _error_like(self, pattern: PatternState) -> bool:
        if pattern.error_like is None:
            pattern.error_like = self._error_like_words(pattern.template)
        return pattern.error_like

    def _view(self, canonical, members, allocation, volume) -> PatternView:
        errors = sum(sum(m.last_counts.get(b, 0) for b in self._floor_buckets) for m in members)
        total = sum(sum(m.last_counts.values()) for m in members)
        template = self._template(canonical, members)
        examples = tuple(e for m in members for e in m.examples)[:MAX_EXAMPLES]
        return PatternView(
            pattern_id=canonical,
            service=members[0].service,
            template=template,
            examples=examples,
            volume_per_second=volume,
            error_share=errors / total if total else 0.0,
            rate=allocation.rate,
            reason=allocation.reason,
            explanation=allocation.explanation,
            first_seen=min(m.first_seen for m in members),
            last_seen=max(m.last_seen for m in members),
            merged_signatures=tuple(sorted(m.pattern_id for m in members)),
        )


def floor_buckets(severity_floor: int) -> frozenset[str]:
    """Severity buckets whose records the floor keeps whole."""
    return frozenset(name for name, low in SEVERITY_LEVELS.items() if low + 3 >= severity_floor)


def _floor_share(pattern: PatternState, floor_buckets: frozenset[str]) -> float:
    total = sum(pattern.last_counts.values())
    if not total:
        return 0.0
    return sum(pattern.last_counts.get(b, 0) for b in floor_buckets) / total


def describe_changes(previous: Policy | None, current: Policy) -> str:
    """What changed between two versions, for history; empty when the rules are the same."""
    if previous is None:
        return "first learned policy"
    before, after = previous.pattern_rules, current.pattern_rules
    added = after.keys() - before.keys()
    removed = before.keys() - after.keys()
    changed = [
        pid
        for pid in after.keys() & before.keys()
        if (after[pid].rate, after[pid].reason) != (before[pid].rate, before[pid].reason)
    ]
    parts = []
    if added:
        parts.append(f"{len(added)} new patterns")
    if removed:
        parts.append(f"{len(removed)} forgotten")
    for pid in sorted(changed)[:5]:
        parts.append(f"{pid} {before[pid].rate:g}->{after[pid].rate:g} ({after[pid].reason})")
    if len(changed) > 5:
        parts.append(f"{len(changed) - 5} more rate changes")
    if previous.pattern_aliases != current.pattern_aliases:
        parts.append(f"{len(current.pattern_aliases)} merged signatures")
    if previous.exemptions != current.exemptions:
        parts.append(f"{len(current.exemptions)} exemptions")
    return ", ".join(parts)
