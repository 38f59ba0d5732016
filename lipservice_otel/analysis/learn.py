"""Learning: fold receivers' reports into an interval, then the interval into the state.

Pure functions over `AnalysisState` (no I/O, no clock of their own, no logging): the loop
(loop.py) calls them in a worker thread under its lock and reports what they found. One cycle:

1. the reports since the last cycle were summed per signature pattern (`fold_report`); patterns
   not known yet were taken up to `max_new_patterns_per_cycle`, loudest first, the rest left
   for a later cycle, so a flood of distinct templates costs bounded memory;
2. templates that differ only in word-valued variables are merged (patterns.py);
3. anomalies are detected against the moving baselines: spikes (of a whole pattern, or of one
   template inside a merged pattern, against that template's own baseline), error surges, new
   patterns; each boosts its pattern (or its template) to rate 1.0 for `anomaly_cooldown_s`.
   Patterns whose interval is at least `RISING_RATIO` x their baseline are marked rising, so
   the budget keeps at least their previous rate (plan.py);
4. the baselines are updated: records/s, and for the savings report bytes/s and the records/s
   and bytes/s the receivers kept;
5. patterns past `pattern_ttl_s` or beyond `max_patterns` are forgotten (least recently seen
   first), with their boosts and judgements.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace

from lipservice_otel.analysis.anomaly import Anomaly, Baseline, detect_error_surge, detect_spike
from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.patterns import merge_by_service
from lipservice_otel.analysis.state import AnalysisState, PatternState
from lipservice_otel.analysis.tenants import TenantAdmission, scope_key
from lipservice_otel.policy.reasons import (
    BOOST_REASONS,
    KIND_ERROR_SURGE,
    KIND_NEW_PATTERN,
    KIND_SPIKE,
)
from lipservice_otel.sampling.aggregates import IntervalReport

MAX_EXAMPLES = 3
# A pattern this much above its baseline is getting louder: the budget's log weights would
# otherwise hand it a smaller rate, and an incident less detail, before a spike is confirmed.
RISING_RATIO = 1.5
# The last counts of every pattern without records in an interval (never changed in place).
_NO_COUNTS: dict[str, int] = {}


@dataclass(slots=True)
class Volume:
    """A pattern's kept records and its bytes (all and kept) in one interval."""

    kept: int = 0
    received_bytes: int = 0
    kept_bytes: int = 0


# The volume of every pattern without records in an interval (never changed in place).
_NO_VOLUME = Volume()


@dataclass(slots=True)
class Interval:
    """Reports folded since the last cycle."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # pid -> bucket -> n
    volumes: dict[str, Volume] = field(default_factory=dict)  # pid -> kept and bytes
    # pid -> (service, template, examples, tenant)
    patterns: dict[str, tuple[str, str, list[str], str]] = field(default_factory=dict)
    overflow_records: int = 0
    reports: int = 0
    new_patterns: int = 0  # of `patterns`, those the analysis did not know when they came
    # Of those, the ones learned under OTHER_TENANT: their tenant was over max_tenants.
    tenant_overflow_patterns: int = 0


@dataclass(slots=True)
class Learned:
    """What one cycle's learning found, for the loop to log and count."""

    anomalies: list[Anomaly] = field(default_factory=list)
    forgotten_by_ttl: int = 0
    forgotten_by_max_patterns: int = 0


def fold_report(
    pending: Interval,
    report: IntervalReport,
    known: dict,
    max_new_per_cycle: int,
    admission: TenantAdmission | None = None,
) -> int:
    """Add one receiver's report to `pending`; returns how many new patterns it deferred.

    With `admission`, a new pattern of a tenant beyond max_tenants is learned under
    OTHER_TENANT (counted in `pending.tenant_overflow_patterns`).

    `known` may be changing under a cycle's worker thread: a pattern it is learning right now
    may count as new once more, which costs one place.
    """
    pending.reports += 1
    pending.overflow_records += report.overflow_records
    new = [pid for pid in report.patterns if pid not in pending.patterns and pid not in known]
    deferred = defer_quietest(report, new, max_new_per_cycle - pending.new_patterns)
    pending.new_patterns += len(new) - len(deferred)
    for pid, info in report.patterns.items():
        if pid in deferred:
            continue
        seen = pending.patterns.get(pid)
        if seen is None:
            tenant = info.tenant
            if admission is not None and pid not in known:
                tenant = admission.admit(tenant)
                pending.tenant_overflow_patterns += tenant != info.tenant
            pending.patterns[pid] = (info.service, info.template, list(info.examples), tenant)
        elif len(seen[2]) < MAX_EXAMPLES:
            seen[2].extend(info.examples[: MAX_EXAMPLES - len(seen[2])])
    for counts in report.counts:
        pid = counts.pattern_id
        if pid not in pending.patterns and pid not in known:
            continue  # deferred, or counted without a template (`other`): nothing to learn
        buckets = pending.counts.setdefault(pid, {})
        buckets[counts.severity_bucket] = buckets.get(counts.severity_bucket, 0) + counts.received
        volume = pending.volumes.get(pid)
        if volume is None:
            volume = pending.volumes[pid] = Volume()
        volume.kept += counts.kept
        volume.received_bytes += counts.received_bytes
        volume.kept_bytes += counts.kept_bytes
    return len(deferred)


def defer_quietest(report: IntervalReport, new: list[str], room: int) -> set[str]:
    """The new patterns of `report` over this cycle's room: all but the loudest `room`."""
    if len(new) <= room:
        return set()
    volumes = dict.fromkeys(new, 0)
    for counts in report.counts:
        if counts.pattern_id in volumes:
            volumes[counts.pattern_id] += counts.received
    return volumes.keys() - heapq.nlargest(max(room, 0), new, key=volumes.__getitem__)


def learn(
    state: AnalysisState,
    pending: Interval,
    config: AnalysisConfig,
    floor_buckets: frozenset[str],
    now: float,
    elapsed: float,
) -> Learned:
    """Steps 2-5 of a cycle over `pending`, in place on `state`."""
    bound_to_now(state, config, now)
    warmed_up = state.cycles > 0
    known_before = set(state.patterns)
    new_patterns = []
    for pid, (service, template, examples, tenant) in pending.patterns.items():
        pattern = state.patterns.get(pid)
        if pattern is None:
            pattern = state.patterns[pid] = PatternState(pid, service, template, now, tenant=tenant)
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
        merge(state, config.merge_patterns, elapsed)
    groups = state.groups()
    anomalies = detect(state, groups, config, floor_buckets, elapsed)
    state.rising = rising(groups, elapsed)
    for pattern in new_patterns:
        canonical = state.aliases.get(pattern.pattern_id, pattern.pattern_id)
        if any(m.pattern_id in known_before for m in groups[canonical]):
            continue  # a new spelling of a known pattern (merged), not a new pattern
        anomalies.append(
            Anomaly(KIND_NEW_PATTERN, pattern.service, canonical, "warning", 1.0, "first seen")
        )
    boost(state, anomalies, now + config.anomaly_cooldown_s)
    for pattern in state.patterns.values():
        update_baselines(
            pattern, pending.volumes.get(pattern.pattern_id, _NO_VOLUME), config, elapsed
        )
    for scope, share in error_shares(state, floor_buckets).items():
        state.error_share.setdefault(scope, Baseline()).update(share[0], config.ema_alpha)
    if pending.reports:
        # Only cycles that saw traffic count: "new" means new since traffic was first seen.
        state.cycles += 1
    by_ttl, by_max_patterns = forget(state, config, now)
    return Learned(anomalies, by_ttl, by_max_patterns)


def update_baselines(
    pattern: PatternState, volume: Volume, config: AnalysisConfig, elapsed: float
) -> None:
    """Fold the interval into the pattern's records/s, bytes/s and kept baselines, together,
    so each pair (kept of all, bytes of records) is a ratio over the same intervals."""
    alpha = config.ema_alpha
    pattern.rate.update(sum(pattern.last_counts.values()) / elapsed, alpha)
    pattern.bytes_rate.update(volume.received_bytes / elapsed, alpha)
    pattern.kept_rate.update(volume.kept / elapsed, alpha)
    pattern.kept_bytes_rate.update(volume.kept_bytes / elapsed, alpha)


def merge(state: AnalysisState, enabled: bool, elapsed: float) -> None:
    if not enabled:
        state.aliases, state.canonical_templates = {}, {}
        return
    patterns = [(p.pattern_id, p.service, p.template) for p in state.patterns.values()]
    # Records/s of each template weigh how spread a position's values are: its baseline, or
    # for a template new this cycle its rate in the interval.
    rates = {
        p.pattern_id: p.rate.mean if p.rate.samples else sum(p.last_counts.values()) / elapsed
        for p in state.patterns.values()
    }
    tenants = {p.pattern_id: p.tenant for p in state.patterns.values() if p.tenant}
    state.aliases, state.canonical_templates = merge_by_service(
        patterns, counts=rates, tenants=tenants
    )


def detect(
    state: AnalysisState,
    groups: dict[str, list[PatternState]],
    config: AnalysisConfig,
    floor_buckets: frozenset[str],
    elapsed: float,
) -> list[Anomaly]:
    """Spikes per canonical pattern or, when the pattern as a whole does not spike, per
    template of a merged one; then error surges per service of a tenant (on its ERROR+
    patterns)."""
    anomalies = []
    for canonical, members in groups.items():
        count = sum(sum(m.last_counts.values()) for m in members)
        found = _spike(group_baseline(members), count, elapsed, config)
        if found:
            severity, confidence, detail = found
            anomalies.append(
                Anomaly(KIND_SPIKE, members[0].service, canonical, severity, confidence, detail)
            )
            continue
        if len(members) == 1:
            continue
        # One template's jump is diluted by the other members' steady volume: each is also
        # measured against its own baseline, and only it is boosted.
        for member in members:
            found = _spike(member.rate, sum(member.last_counts.values()), elapsed, config)
            if found:
                severity, confidence, detail = found
                anomalies.append(
                    Anomaly(
                        KIND_SPIKE,
                        member.service,
                        canonical,
                        severity,
                        confidence,
                        f"template {member.pattern_id}: {detail}",
                        member.pattern_id,
                    )
                )
    for scope, (share, errors) in error_shares(state, floor_buckets).items():
        baseline = state.error_share.get(scope, Baseline())
        found = detect_error_surge(
            baseline, share, errors, config.surge_min_share_increase, config.spike_min_records
        )
        if not found:
            continue
        severity, confidence, detail = found
        for canonical, members in groups.items():
            first = members[0]
            if scope_key(first.tenant, first.service) == scope and any(
                m.last_counts.get(b) for m in members for b in floor_buckets
            ):
                anomalies.append(
                    Anomaly(
                        KIND_ERROR_SURGE, first.service, canonical, severity, confidence, detail
                    )
                )
    return anomalies


def group_baseline(members: list[PatternState]) -> Baseline:
    """The baseline of a merged pattern: its members' summed."""
    return Baseline(
        mean=sum(m.rate.mean for m in members),
        variance=sum(m.rate.variance for m in members),
        samples=max(m.rate.samples for m in members),
    )


def _spike(
    baseline: Baseline, count: int, elapsed: float, config: AnalysisConfig
) -> tuple[str, float, str] | None:
    return detect_spike(
        baseline,
        count / elapsed,
        count,
        elapsed,
        config.spike_ratio,
        config.spike_z,
        config.spike_min_records,
    )


def rising(groups: dict[str, list[PatternState]], elapsed: float) -> frozenset[str]:
    """Canonical patterns whose last interval was at least RISING_RATIO x their baseline."""
    found = []
    for canonical, members in groups.items():
        baseline = group_baseline(members)
        count = sum(sum(m.last_counts.values()) for m in members)
        if baseline.samples >= 2 and count / elapsed >= RISING_RATIO * baseline.mean > 0:
            found.append(canonical)
    return frozenset(found)


def error_shares(
    state: AnalysisState, floor_buckets: frozenset[str]
) -> dict[str, tuple[float, int]]:
    """Per service of a tenant (scope_key): the share and the number of last-interval records
    at the floor or above."""
    totals: dict[str, list[int]] = {}
    for pattern in state.patterns.values():
        if not pattern.last_counts:
            continue
        entry = totals.setdefault(scope_key(pattern.tenant, pattern.service), [0, 0])
        entry[0] += sum(pattern.last_counts.values())
        entry[1] += sum(pattern.last_counts.get(b, 0) for b in floor_buckets)
    return {s: (errors / total, errors) for s, (total, errors) in totals.items() if total}


def boost(state: AnalysisState, anomalies: list[Anomaly], until: float) -> None:
    """Keep each anomaly's pattern whole until `until`; a later anomaly of a pattern wins."""
    # One (reason, until) per kind, shared by its boosts (a flood makes many).
    values = {kind: (reason, until) for kind, reason in BOOST_REASONS.items()}
    for anomaly in anomalies:
        if anomaly.signature_id:
            state.template_boosts[anomaly.signature_id] = values[anomaly.kind]
        else:
            state.boosts[anomaly.pattern_id] = values[anomaly.kind]


def bound_to_now(state: AnalysisState, config: AnalysisConfig, now: float) -> None:
    """Instants that came back from the future: the wall clock stepped back while the
    analyzer was down (its clock is read again at each start), or a standby adopted the state
    of a writer whose clock is ahead. No boost outlasts its cooldown from now; no pattern
    was seen and no judgement made later than now."""
    latest = now + config.anomaly_cooldown_s
    for boosts in (state.boosts, state.template_boosts):
        for key, (reason, until) in boosts.items():
            if until > latest:
                boosts[key] = (reason, latest)
    for pattern in state.patterns.values():
        pattern.first_seen = min(pattern.first_seen, now)
        pattern.last_seen = min(pattern.last_seen, now)
    for pid, judgement in state.judgements.items():
        if judgement.judged_at > now:
            state.judgements[pid] = replace(judgement, judged_at=now)


def forget(state: AnalysisState, config: AnalysisConfig, now: float) -> tuple[int, int]:
    """Drop stale patterns and those beyond max_patterns; returns how many of each."""
    oldest = now - config.pattern_ttl_s
    stale = [pid for pid, p in state.patterns.items() if p.last_seen < oldest]
    by_ttl = len(stale)
    overflow = len(state.patterns) - len(stale) - config.max_patterns
    if overflow > 0:
        # Least recently seen first and, among patterns seen as lately, the quietest: a
        # flood of one-off templates must not push out the patterns seen all along (they
        # would come back as new, boosted to rate 1.0).
        by_age = sorted(
            (p for p in state.patterns.values() if p.last_seen >= oldest),
            key=lambda p: (p.last_seen, p.rate.mean),
        )
        stale.extend(p.pattern_id for p in by_age[:overflow])
    for pid in stale:
        del state.patterns[pid]
    # Boosts and judgements go with their patterns: a pattern forgotten and seen again is
    # new again. So neither outnumbers the patterns tracked (at most max_patterns).
    canonical = {state.aliases.get(pid, pid) for pid in state.patterns}
    state.boosts = {pid: b for pid, b in state.boosts.items() if b[1] > now and pid in canonical}
    state.template_boosts = {
        sid: b for sid, b in state.template_boosts.items() if b[1] > now and sid in state.patterns
    }
    state.overrides = {
        k: o for k, o in state.overrides.items() if not o.expires_at or o.expires_at > now
    }
    expiry = now - config.llm.judgement_ttl_s
    state.judgements = {
        pid: j for pid, j in state.judgements.items() if pid in canonical and j.judged_at > expiry
    }
    return by_ttl, max(overflow, 0)
