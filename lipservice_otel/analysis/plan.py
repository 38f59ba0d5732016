"""Planning: turn what the analysis knows into the next policy version, and describe it.

Pure functions over `AnalysisState` (no I/O): per canonical pattern a load (its volume, the
part the severity floor keeps anyway, a fixed rate from an override or an anomaly boost, the
error-like flag, the model's fresh judgement), per tenant its budget split over its services
(tenants.py), per service a budget allocated over those loads (rules.py), then a policy on top
of the configured base, and a view of every pattern for `policy show` / `ListPatterns`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.learn import MAX_EXAMPLES
from lipservice_otel.analysis.llm.advisor import Consultation
from lipservice_otel.analysis.llm.judgement import Judgement, PatternBrief, fingerprint
from lipservice_otel.analysis.rules import Allocation, ErrorLikeFloor, PatternLoad, allocate_service
from lipservice_otel.analysis.state import AnalysisState, PatternState
from lipservice_otel.analysis.tenants import TenantPlan, describe_tenant, plan_tenant
from lipservice_otel.policy.model import SEVERITY_LEVELS, PatternRule, Policy
from lipservice_otel.policy.reasons import ANOMALY_REASON_PREFIX, REASON_OVERRIDE
from lipservice_otel.text.error_words import DEFAULT_ERROR_WORDS, compile_error_words


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
    tenant: str = ""
    # Records/s the rate keeps of its volume (the severity floor's part whole).
    kept_per_second: float = 0.0
    # Records/s its whole tenant may keep (tenants.py), the same for each of its patterns.
    tenant_budget_per_second: float = 0.0


@dataclass(frozen=True, slots=True)
class Planning:
    """What planning reads from the settings and the configured base, worked out once."""

    config: AnalysisConfig
    floor_buckets: frozenset[str]
    error_like_floor: ErrorLikeFloor | None
    error_like: Callable[[str], bool]
    # Whether the model's judgements count (the advisor is enabled).
    advised: bool

    @classmethod
    def of(cls, config: AnalysisConfig, base: Policy) -> Planning:
        words = tuple(config.error_like_words) or DEFAULT_ERROR_WORDS
        return cls(
            config=config,
            floor_buckets=floor_buckets(base.severity_floor),
            error_like_floor=(
                ErrorLikeFloor(
                    config.error_like_min_rate, config.error_like_min_examples_per_interval
                )
                if config.error_like
                else None
            ),
            error_like=compile_error_words(words),
            advised=config.llm.enabled,
        )


def plan(
    state: AnalysisState,
    planning: Planning,
    base: Policy,
    previous: Policy | None,
    consultation: Consultation,
    anomalies: int,
    now: float,
    force: bool,
) -> tuple[Policy | None, dict[str, PatternView]]:
    """The next policy version (None when nothing changed and not `force`) and the views."""
    config = planning.config
    groups = state.groups()
    # Patterns are budgeted within their (tenant, service): budgets never pool across tenants.
    by_scope: dict[tuple[str, str], list[PatternLoad]] = {}
    advised = 0
    for canonical, members in groups.items():
        override = state.overrides.get(canonical)
        boost = state.boosts.get(canonical)
        fixed_rate, fixed_reason = None, ""
        if override is not None and override.rate is not None:
            fixed_rate, fixed_reason = override.rate, REASON_OVERRIDE
        elif boost is not None:
            fixed_rate, fixed_reason = 1.0, boost[0]
        # A template boosted alone is kept whole outside the budget, as a boosted pattern is;
        # the rest of its pattern shares the budget.
        budgeted = [m for m in members if m.pattern_id not in state.template_boosts] or members
        floor = sum(m.rate.mean * _floor_share(m, planning.floor_buckets) for m in budgeted)
        total = sum(m.rate.mean for m in budgeted)
        error_like = any(_error_like(m, planning.error_like) for m in members)
        # A person's override or an anomaly boost outranks the model.
        advice = (
            fresh_judgement(state, planning, canonical, members, now)
            if fixed_rate is None
            else None
        )
        advised += advice is not None
        by_scope.setdefault((members[0].tenant, members[0].service), []).append(
            PatternLoad(
                canonical,
                max(total - floor, 0.0),
                floor,
                fixed_rate,
                fixed_reason,
                error_like,
                advice,
                _held_rate(state, previous, canonical),
            )
        )
    rules: dict[str, PatternRule] = {}
    signature_rules: dict[str, PatternRule] = {}
    views: dict[str, PatternView] = {}
    tenants = tenant_plans(by_scope, config)
    for (tenant, service), loads in by_scope.items():
        split = tenants[tenant]
        allocations = allocate_service(
            loads,
            config.target_reduction,
            split.service_budgets[service],
            config.min_examples_per_interval,
            config.interval_s,
            planning.error_like_floor,
        )
        tenant_budget = split.budget(config.target_reduction)
        for load in loads:
            allocation = allocations[load.pattern_id]
            if load.fixed_rate is None:
                allocation = with_tenant(allocation, split)
            volume = load.sampled_per_second + load.floor_per_second
            rules[load.pattern_id] = PatternRule(allocation.rate, allocation.reason, volume)
            views[load.pattern_id] = replace(
                pattern_view(
                    state, planning, load.pattern_id, groups[load.pattern_id], allocation, volume
                ),
                kept_per_second=allocation.rate * load.sampled_per_second + load.floor_per_second,
                tenant_budget_per_second=tenant_budget,
            )
            if len(groups[load.pattern_id]) > 1 and load.fixed_reason != REASON_OVERRIDE:
                signature_rules.update(
                    _member_rules(state, groups[load.pattern_id], rules[load.pattern_id])
                )
    aliases = {pid: c for pid, c in state.aliases.items() if pid != c}
    overridden = tuple(o.exemption for o in state.overrides.values() if o.exemption)
    # Above the configured base's version too: receivers already run the base (version 1
    # from the file) before the first learned policy, and a version says which one applies.
    version = max(previous.version if previous else 0, base.version) + 1
    candidate = replace(
        base,
        version=version,
        pattern_rules=rules,
        pattern_aliases=aliases,
        signature_rules=signature_rules,
        exemptions=base.exemptions + overridden,
        learned=True,
        generator="rules+llm" if advised else "rules",
        created_unix_nano=int(now * 1e9),
    )
    changes = describe_changes(previous, candidate)
    if previous is not None and not changes and not force:
        return None, views
    llm = consultation.describe()
    if advised:
        llm += f", judgements applied to {advised} patterns"
    services = len({service for _, service in by_scope})
    where = f"{services} services"
    if any(tenants):
        where += f" of {len(tenants)} tenants"
    summary = (
        f"{len(rules)} patterns in {where}, {anomalies} anomalies; {llm}; {changes or 'no change'}"
    )
    return replace(candidate, summary=summary), views


def tenant_plans(
    by_scope: dict[tuple[str, str], list[PatternLoad]], config: AnalysisConfig
) -> dict[str, TenantPlan]:
    """Each tenant's budget split over its services, from their budgeted volumes: patterns
    with a fixed rate (an anomaly, an override) sit outside every budget."""
    volumes: dict[str, dict[str, float]] = {}
    for (tenant, service), loads in by_scope.items():
        volumes.setdefault(tenant, {})[service] = sum(
            load.sampled_per_second + load.floor_per_second
            for load in loads
            if load.fixed_rate is None
        )
    return {
        tenant: plan_tenant(
            tenant,
            services,
            config.tenants.get(tenant),
            config.target_reduction,
            config.target_records_per_second,
        )
        for tenant, services in volumes.items()
    }


def with_tenant(allocation: Allocation, split: TenantPlan) -> Allocation:
    """The allocation, its explanation naming the tenant's cap when it has one."""
    said = describe_tenant(split)
    if not said:
        return allocation
    return replace(allocation, explanation=f"{allocation.explanation}; {said}")


def briefs_to_ask(state: AnalysisState, planning: Planning, now: float) -> list[PatternBrief]:
    """Patterns without a fresh judgement and not pinned by a person, loudest first: when the
    budget or the clock runs out, the patterns that weigh most in the allocation are judged."""
    briefs = [
        pattern_brief(state, canonical, members)
        for canonical, members in state.groups().items()
        if fresh_judgement(state, planning, canonical, members, now) is None
        and not _overridden(state, canonical)
    ]
    briefs.sort(key=lambda b: b.volume_per_second, reverse=True)
    return briefs


def fresh_judgement(
    state: AnalysisState,
    planning: Planning,
    canonical: str,
    members: list[PatternState],
    now: float,
) -> Judgement | None:
    """The model's judgement of a pattern while it is fresh and about its current template."""
    judgement = state.judgements.get(canonical)
    if (
        not planning.advised
        or judgement is None
        or judgement.judged_at <= now - planning.config.llm.judgement_ttl_s
        or judgement.fingerprint != fingerprint(canonical_template(state, canonical, members))
    ):
        return None
    return judgement


def pattern_brief(
    state: AnalysisState, canonical: str, members: list[PatternState]
) -> PatternBrief:
    counts: dict[str, int] = {}
    for member in members:
        for bucket, n in member.last_counts.items():
            counts[bucket] = counts.get(bucket, 0) + n
    total = sum(counts.values())
    return PatternBrief(
        pattern_id=canonical,
        service=members[0].service,
        template=canonical_template(state, canonical, members),
        examples=tuple(e for m in members for e in m.examples)[:MAX_EXAMPLES],
        severity_mix={b: n / total for b, n in counts.items()} if total else {},
        volume_per_second=sum(m.rate.mean for m in members),
    )


def pattern_view(
    state: AnalysisState,
    planning: Planning,
    canonical: str,
    members: list[PatternState],
    allocation: Allocation,
    volume: float,
) -> PatternView:
    buckets = planning.floor_buckets
    errors = sum(sum(m.last_counts.get(b, 0) for b in buckets) for m in members)
    total = sum(sum(m.last_counts.values()) for m in members)
    return PatternView(
        pattern_id=canonical,
        service=members[0].service,
        template=canonical_template(state, canonical, members),
        examples=tuple(e for m in members for e in m.examples)[:MAX_EXAMPLES],
        volume_per_second=volume,
        error_share=errors / total if total else 0.0,
        rate=allocation.rate,
        reason=allocation.reason,
        explanation=allocation.explanation,
        first_seen=min(m.first_seen for m in members),
        last_seen=max(m.last_seen for m in members),
        merged_signatures=tuple(sorted(m.pattern_id for m in members)),
        tenant=members[0].tenant,
    )


def canonical_template(state: AnalysisState, canonical: str, members: list[PatternState]) -> str:
    return state.canonical_templates.get(canonical, members[0].template)


def floor_buckets(severity_floor: int) -> frozenset[str]:
    """Severity buckets whose records the floor keeps whole."""
    return frozenset(name for name, low in SEVERITY_LEVELS.items() if low + 3 >= severity_floor)


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
    if _boosted_templates(previous) != _boosted_templates(current):
        parts.append(f"{len(_boosted_templates(current))} templates boosted alone")
    if previous.exemptions != current.exemptions:
        parts.append(f"{len(current.exemptions)} exemptions")
    return ", ".join(parts)


def _held_rate(state: AnalysisState, previous: Policy | None, canonical: str) -> float:
    """The least rate for a pattern getting louder: the one it had (never an anomaly's or a
    person's, which end with their cooldown or expiry)."""
    if previous is None or canonical not in state.rising:
        return 0.0
    rule = previous.pattern_rules.get(canonical)
    if rule is None or rule.reason == REASON_OVERRIDE:
        return 0.0
    if rule.reason.startswith(ANOMALY_REASON_PREFIX):
        return 0.0
    return rule.rate


def _member_rules(
    state: AnalysisState, members: list[PatternState], pattern: PatternRule
) -> dict[str, PatternRule]:
    """Each member's own rule: its baseline for the receiver's burst detector, and its
    pattern's rate unless it was boosted alone."""
    rules = {}
    for member in members:
        boost = state.template_boosts.get(member.pattern_id)
        if boost and pattern.rate < 1.0:
            rate, reason = 1.0, boost[0]
        else:
            rate, reason = pattern.rate, pattern.reason
        rules[member.pattern_id] = PatternRule(rate, reason, member.rate.mean)
    return rules


def _boosted_templates(policy: Policy) -> set[str]:
    """Signatures whose own rule differs from their merged pattern's."""
    boosted = set()
    for sid, rule in policy.signature_rules.items():
        pattern = policy.pattern_rules.get(policy.pattern_aliases.get(sid, sid))
        if pattern is None or (pattern.rate, pattern.reason) != (rule.rate, rule.reason):
            boosted.add(sid)
    return boosted


def _error_like(pattern: PatternState, matcher: Callable[[str], bool]) -> bool:
    # Worked out once per pattern: the template does not change.
    if pattern.error_like is None:
        pattern.error_like = matcher(pattern.template)
    return pattern.error_like


def _floor_share(pattern: PatternState, buckets: frozenset[str]) -> float:
    total = sum(pattern.last_counts.values())
    if not total:
        return 0.0
    return sum(pattern.last_counts.get(b, 0) for b in buckets) / total


def _overridden(state: AnalysisState, canonical: str) -> bool:
    override = state.overrides.get(canonical)
    return override is not None and override.rate is not None
