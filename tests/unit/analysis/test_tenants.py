"""Per-tenant budgets: the settings, the split of a tenant's cap over its services, and plans
over two tenants, one ten times louder than the other, with the same service names."""

from __future__ import annotations

import asyncio
import json

import pytest

from lipservice_otel.analysis.anomaly import Baseline
from lipservice_otel.analysis.config import AnalysisConfig, TenantBudget
from lipservice_otel.analysis.llm.advisor import STATUS_DISABLED, Consultation
from lipservice_otel.analysis.loop import AnalysisLoop
from lipservice_otel.analysis.patterns import merge_by_service
from lipservice_otel.analysis.plan import PatternView, Planning, plan
from lipservice_otel.analysis.state import AnalysisState, PatternState
from lipservice_otel.analysis.tenants import plan_tenant
from lipservice_otel.control.codec import (
    InvalidReport,
    check_report,
    report_from_proto,
    report_to_proto,
)
from lipservice_otel.control.config import ReportLimitsConfig
from lipservice_otel.policy.model import Policy
from lipservice_otel.sampling.aggregates import IntervalReport, PatternCounts, PatternInfo
from lipservice_otel.settings import load_settings
from lipservice_otel.store.memory import MemoryStore
from lipservice_otel.telemetry import Telemetry
from lipservice_otel.text.signature import pattern_id
from lipservice_otel.validation import ConfigError


def test_tenant_settings_load_from_yaml_and_environment(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "analysis:\n"
        "  tenant_key: header:X-Scope-OrgID\n"
        "  max_tenants: 5\n"
        "  tenants:\n"
        "    team-a: {target_reduction: 0.9}\n"
        "    team-b: {target_records_per_second: 50}\n"
    )
    environ = {"LIPSERVICE_ANALYSIS__TENANTS__TEAM_C__TARGET_RECORDS_PER_SECOND": "7"}
    analysis = load_settings(str(path), environ=environ).analysis
    assert analysis.tenant_key == "header:X-Scope-OrgID"
    assert analysis.max_tenants == 5
    assert analysis.tenants == {
        "team-a": TenantBudget(target_reduction=0.9),
        "team-b": TenantBudget(target_records_per_second=50.0),
        # Environment variable names are upper case: the tenant's name arrives lower case.
        "team_c": TenantBudget(target_records_per_second=7.0),
    }


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TENANT_KEY": "x-scope-orgid"}, "analysis.tenant_key: expected 'resource:"),
        ({"TENANT_KEY": "header:grpc-timeout"}, "analysis.tenant_key: expected a header"),
        ({"MAX_TENANTS": "0"}, "analysis.max_tenants: must be >= 1"),
        ({"TENANTS": "{a: {}}"}, "analysis.tenants.a: set exactly one of target_reduction"),
        (
            {"TENANTS": "{a: {target_reduction: 0.5, target_records_per_second: 3}}"},
            "analysis.tenants.a: set exactly one",
        ),
        ({"TENANTS": "{a: {target_reduction: 1}}"}, "analysis.tenants.a.target_reduction: must"),
        (
            {"TENANTS": "{a: {target_records_per_second: 0}}"},
            "analysis.tenants.a.target_records_per_second: must be > 0",
        ),
        ({"TENANTS": "{a: {target_reductio: 0.5}}"}, "analysis.tenants.a.target_reductio: unknown"),
        ({"TENANTS": "{a: 0.5}"}, "analysis.tenants.a: expected a mapping"),
        (
            {
                "MAX_TENANTS": "1",
                "TENANTS": "{a: {target_reduction: 0.5}, b: {target_reduction: 0.5}}",
            },
            "analysis.tenants: 2 tenants, more than max_tenants (1)",
        ),
    ],
)
def test_bad_tenant_settings_name_their_key(environ, message):
    environ = {f"LIPSERVICE_ANALYSIS__{k}": v for k, v in environ.items()}
    with pytest.raises(ConfigError) as raised:
        load_settings(None, environ=environ)
    assert str(raised.value).startswith(message), raised.value


def test_a_patterns_tenant_survives_the_snapshot_and_older_snapshots_load_without_it():
    state = AnalysisState()
    state.patterns["a1"] = PatternState("a1", "api", "GET <*>", 1.0, tenant="team-a")
    state.patterns["b1"] = PatternState("b1", "api", "GET <*>", 1.0, tenant="team-b")
    restored = AnalysisState.from_bytes(state.to_bytes())
    assert {pid: p.tenant for pid, p in restored.patterns.items()} == {
        "a1": "team-a",
        "b1": "team-b",
    }
    # A snapshot written before tenants existed: its patterns have no "tenant" key.
    older = json.loads(state.to_bytes())
    for pattern in older["patterns"]:
        del pattern["tenant"]
    restored = AnalysisState.from_bytes(json.dumps(older).encode())
    assert [p.tenant for p in restored.patterns.values()] == ["", ""]


# Two tenants with the same services and templates; "loud" sends ten times what "quiet" does.
SERVICES = {"api": ("GET /users/<*> 200", "GET /orders/<*> 200"), "db": ("query took <*> ms",)}
QUIET_PER_SECOND = {"GET /users/<*> 200": 400.0, "GET /orders/<*> 200": 100.0}
QUIET_PER_SECOND["query took <*> ms"] = 300.0
INTERVAL_S = 10.0


def traffic(tenant: str, scale: float, errors_per_second: float = 0.0) -> list[PatternState]:
    """One tenant's patterns at `scale` x the quiet volumes (records/s, INFO; ERROR on top)."""
    patterns = []
    for service, templates in SERVICES.items():
        for template in templates:
            per_second = QUIET_PER_SECOND[template] * scale
            counts = {"info": int(per_second * INTERVAL_S)}
            if errors_per_second and service == "api":
                per_second += errors_per_second
                counts["error"] = int(errors_per_second * INTERVAL_S)
            pid = f"{tenant}/{service}/{template}"
            patterns.append(
                PatternState(
                    pid,
                    service,
                    template,
                    0.0,
                    last_seen=INTERVAL_S,
                    rate=Baseline(per_second, 0.0, 5),
                    last_counts=counts,
                    tenant=tenant,
                )
            )
    return patterns


def planned(config: AnalysisConfig, *tenants: list[PatternState]) -> dict[str, PatternView]:
    state = AnalysisState(cycles=5)
    for patterns in tenants:
        state.patterns.update((p.pattern_id, p) for p in patterns)
    planning = Planning.of(config, Policy())
    policy, views = plan(
        state, planning, Policy(), None, Consultation(STATUS_DISABLED), 0, INTERVAL_S, True
    )
    assert set(policy.pattern_rules) == set(views)
    for pid, view in views.items():
        assert policy.pattern_rules[pid].rate == view.rate
    return views


def by_tenant(views: dict[str, PatternView]) -> dict[str, tuple[float, float, float]]:
    """Tenant -> (records/s in, records/s the rates keep, the tenant's budget)."""
    totals: dict[str, list[float]] = {}
    for view in views.values():
        entry = totals.setdefault(view.tenant, [0.0, 0.0, view.tenant_budget_per_second])
        entry[0] += view.volume_per_second
        entry[1] += view.kept_per_second
    return {tenant: tuple(entry) for tenant, entry in totals.items()}


def rates(views: dict[str, PatternView], tenant: str) -> dict[str, float]:
    return {pid: v.rate for pid, v in views.items() if v.tenant == tenant}


BUDGETS = {"quiet": TenantBudget(target_reduction=0.5), "loud": TenantBudget(target_reduction=0.9)}


def test_each_tenant_meets_its_own_target():
    config = AnalysisConfig(interval_s=INTERVAL_S, tenants=BUDGETS)
    figures = by_tenant(planned(config, traffic("quiet", 1), traffic("loud", 10)))
    quiet_in, quiet_kept, quiet_budget = figures["quiet"]
    loud_in, loud_kept, loud_budget = figures["loud"]
    assert (quiet_in, loud_in) == (800.0, 8000.0)
    assert quiet_budget == pytest.approx(400.0)
    assert loud_budget == pytest.approx(800.0)
    # Rates have two significant digits: within a few percent of each tenant's own target.
    assert quiet_kept == pytest.approx(400.0, rel=0.03)
    assert loud_kept == pytest.approx(800.0, rel=0.03)


def test_the_quiet_tenant_keeps_its_rates_when_the_loud_one_grows_tenfold():
    config = AnalysisConfig(interval_s=INTERVAL_S, tenants=BUDGETS)
    before = planned(config, traffic("quiet", 1), traffic("loud", 10))
    after = planned(config, traffic("quiet", 1), traffic("loud", 100))
    assert rates(after, "quiet") == rates(before, "quiet")
    assert by_tenant(after)["loud"][1] == pytest.approx(8000.0, rel=0.03)
    # Against one budget per service shared by both (no tenants: the same templates of one
    # service are one pattern each, here kept apart by their ids), the loud one's growth
    # takes the quiet one's share: what tenants prevent.
    shared = AnalysisConfig(
        interval_s=INTERVAL_S, target_records_per_second={"api": 500.0, "db": 300.0}
    )
    untenanted = [
        [PatternState(**{**_fields(p), "tenant": ""}) for p in patterns]
        for patterns in (traffic("quiet", 1), traffic("loud", 10))
    ]
    grown = [
        untenanted[0],
        [PatternState(**{**_fields(p), "tenant": ""}) for p in traffic("loud", 100)],
    ]
    quiet_ids = [p.pattern_id for p in untenanted[0]]
    rates_before = planned(shared, *untenanted)
    rates_after = planned(shared, *grown)
    assert all(rates_after[pid].rate < rates_before[pid].rate for pid in quiet_ids)


def _fields(pattern: PatternState) -> dict:
    return {name: getattr(pattern, name) for name in PatternState.__slots__}


def test_without_an_entry_a_tenants_services_are_budgeted_as_without_tenants():
    config = AnalysisConfig(interval_s=INTERVAL_S, target_reduction=0.8)
    tenanted = planned(config, traffic("quiet", 1), traffic("loud", 10))
    alone = planned(
        config, [PatternState(**{**_fields(p), "tenant": ""}) for p in traffic("quiet", 1)]
    )
    assert sorted(rates(tenanted, "quiet").values()) == sorted(rates(alone, "").values())
    assert by_tenant(tenanted)["loud"][1] == pytest.approx(0.2 * 8000, rel=0.03)


def test_the_tenant_cap_wins_over_a_larger_service_budget():
    config = AnalysisConfig(
        interval_s=INTERVAL_S,
        target_records_per_second={"api": 1000.0},
        tenants={"loud": TenantBudget(target_records_per_second=300.0)},
    )
    views = planned(config, traffic("loud", 10))
    _, kept, budget = by_tenant(views)["loud"]
    assert budget == pytest.approx(300.0)
    assert kept == pytest.approx(300.0, rel=0.03)
    # api asked for 1000/s, db for its share at the tenant's reduction (1 - 300/8000): both
    # were scaled down by the same factor, so db keeps its proportion.
    split = plan_tenant(
        "loud",
        {"api": 5000.0, "db": 3000.0},
        TenantBudget(target_records_per_second=300.0),
        0.8,
        {"api": 1000.0},
    )
    asked_db = 3000.0 * 300.0 / 8000.0
    assert split.scale == pytest.approx(300.0 / (1000.0 + asked_db))
    assert split.service_budgets["api"] == pytest.approx(1000.0 * split.scale)
    assert split.service_budgets["db"] == pytest.approx(asked_db * split.scale)
    db_kept = sum(v.kept_per_second for v in views.values() if v.service == "db")
    assert db_kept == pytest.approx(split.service_budgets["db"], rel=0.03)
    # `policy explain` says so.
    (db,) = [v for v in views.values() if v.service == "db"]
    assert db.explanation.endswith(
        f"tenant loud cap 300.0/s of 8000.0/s, its services' budgets scaled by "
        f"{split.scale:.3g} to fit"
    )


def test_a_smaller_service_budget_holds_inside_the_tenant_cap():
    config = AnalysisConfig(
        interval_s=INTERVAL_S,
        target_records_per_second={"db": 10.0},
        tenants={"quiet": TenantBudget(target_reduction=0.5)},
    )
    views = planned(config, traffic("quiet", 1))
    db_kept = sum(v.kept_per_second for v in views.values() if v.service == "db")
    api_kept = sum(v.kept_per_second for v in views.values() if v.service == "api")
    assert db_kept == pytest.approx(10.0, rel=0.03)
    assert api_kept == pytest.approx(0.5 * 500.0, rel=0.03)  # not raised to fill the cap


def test_errors_are_kept_whole_and_may_exceed_the_tenant_cap():
    config = AnalysisConfig(
        interval_s=INTERVAL_S, tenants={"quiet": TenantBudget(target_records_per_second=50.0)}
    )
    views = planned(config, traffic("quiet", 1, errors_per_second=80.0))
    _, kept, budget = by_tenant(views)["quiet"]
    assert budget == pytest.approx(50.0)
    # 160 ERROR records/s (80 in each api pattern) are the severity floor: kept whole, over
    # the cap; every pattern still keeps its examples.
    assert kept >= 160.0 + sum(min(5 / INTERVAL_S, v.volume_per_second) for v in views.values())
    assert all(v.rate > 0 for v in views.values())


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def tenant_report(volumes: dict[tuple[str, str], int], service: str = "api") -> IntervalReport:
    """(tenant, template) -> INFO records in the interval, each template its own pattern."""
    counts, patterns = [], {}
    for (tenant, template), n in volumes.items():
        pid = pattern_id(service, template, tenant)
        counts.append(PatternCounts(service, pid, "info", n, n, tenant=tenant))
        patterns[pid] = PatternInfo(service, template, [template], tenant=tenant)
    return IntervalReport(counts, patterns, 0)


def cycle(loop: AnalysisLoop, clock: Clock, volumes: dict[tuple[str, str], int]) -> None:
    clock.now += INTERVAL_S
    loop.ingest(tenant_report(volumes))
    asyncio.run(loop.cycle())


def gauges(telemetry: Telemetry, name: str) -> dict[str, float]:
    (family,) = [m for m in telemetry.registry.collect() if m.name == name]
    return {sample.labels["tenant"]: sample.value for sample in family.samples}


def test_the_analysis_caps_tenants_and_learns_the_rest_under_other():
    clock, telemetry = Clock(), Telemetry()
    config = AnalysisConfig(
        interval_s=INTERVAL_S,
        merge_patterns=False,
        max_tenants=2,
        pattern_ttl_s=25.0,
        tenants={"budgeted": TenantBudget(target_reduction=0.5)},
    )
    loop = AnalysisLoop(config, MemoryStore(None, 100), Policy(), clock=clock, telemetry=telemetry)
    # "budgeted" is configured, so always tracked: with "a" the two places are taken;
    # "default" (records without a tenant) takes none.
    first = {(t, "job <*> done"): 1000 for t in ("a", "b", "c", "budgeted", "default")}
    cycle(loop, clock, first)
    tenants = {p.pattern_id: p.tenant for p in loop.state.patterns.values()}
    assert tenants == {
        pattern_id("api", "job <*> done", "a"): "a",
        pattern_id("api", "job <*> done", "b"): "other",
        pattern_id("api", "job <*> done", "c"): "other",
        pattern_id("api", "job <*> done", "budgeted"): "budgeted",
        pattern_id("api", "job <*> done", "default"): "default",
    }
    assert telemetry.value("lipservice_analysis_tenant_overflow_patterns") == 2
    volumes = gauges(telemetry, "lipservice_analysis_tenant_records_per_second")
    assert volumes == {"a": 100.0, "other": 200.0, "budgeted": 100.0, "default": 100.0}
    budgets = gauges(telemetry, "lipservice_analysis_tenant_budget_records_per_second")
    assert budgets["budgeted"] == pytest.approx(50.0)
    # The overflowed patterns keep their ids (receivers stamp them) and get rules.
    assert set(loop.policy.pattern_rules) == set(tenants)

    # "a" goes quiet and is forgotten with its pattern (and "c", under `other`): its series go
    # and its place is free for the next cycle's new tenant.
    clock.now += 20.0
    still = {("budgeted", "job <*> done"): 1000, ("b", "job <*> done"): 1000}
    cycle(loop, clock, still)
    assert {p.tenant for p in loop.state.patterns.values()} == {"budgeted", "other"}
    assert set(gauges(telemetry, "lipservice_analysis_tenant_records_per_second")) == {
        "budgeted",
        "other",
    }
    cycle(loop, clock, {**still, ("d", "job <*> done"): 1000})
    assert {p.tenant for p in loop.state.patterns.values()} == {"budgeted", "other", "d"}
    assert telemetry.value("lipservice_analysis_tenant_overflow_patterns") == 2


def test_templates_merge_within_a_tenant_never_across():
    names = ("alice", "bob", "carol", "dave", "erin", "frank")
    templates = [f"session closed for user {name}" for name in names]
    tenants = {pattern_id("api", t, tenant): tenant for tenant in ("a", "b") for t in templates}
    patterns = [
        (pid, "api", template) for pid, template in zip(tenants, templates * 2, strict=True)
    ]
    aliases, canonical = merge_by_service(patterns, tenants=tenants)
    groups: dict[str, set[str]] = {}
    for pid, _, _ in patterns:
        groups.setdefault(aliases.get(pid, pid), set()).add(tenants[pid])
    # One merged pattern per tenant, each with that tenant's templates only.
    assert sorted(map(sorted, groups.values())) == [["a"], ["b"]]
    assert set(canonical) == {
        pattern_id("api", "session closed for user <*>", "a"),
        pattern_id("api", "session closed for user <*>", "b"),
    }


def test_an_error_surge_of_one_tenant_boosts_that_tenants_errors_only():
    clock = Clock()
    config = AnalysisConfig(interval_s=INTERVAL_S, merge_patterns=False)
    loop = AnalysisLoop(config, MemoryStore(None, 100), Policy(), clock=clock)

    def errors(tenant_errors: dict[str, int]) -> IntervalReport:
        report = tenant_report({(t, "request served"): 1000 for t in ("a", "b")})
        for tenant, n in tenant_errors.items():
            pid = pattern_id("api", "request failed", tenant)
            report.counts.append(PatternCounts("api", pid, "error", n, n, tenant=tenant))
            report.patterns[pid] = PatternInfo("api", "request failed", ["x"], tenant=tenant)
        return report

    for _ in range(4):
        clock.now += INTERVAL_S
        loop.ingest(errors({"a": 10, "b": 10}))
        asyncio.run(loop.cycle())
    clock.now += INTERVAL_S
    loop.ingest(errors({"a": 400, "b": 10}))
    asyncio.run(loop.cycle())
    surged = {a.pattern_id for a in loop.anomalies if a.kind == "error_surge"}
    assert surged == {pattern_id("api", "request failed", "a")}


def test_the_tenant_crosses_the_control_plane_and_is_bounded_there():
    report = tenant_report({("team-a", "GET <*>"): 3})
    back = report_from_proto(report_to_proto(report, "r1", 1))
    assert [c.tenant for c in back.counts] == ["team-a"]
    assert [p.tenant for p in back.patterns.values()] == ["team-a"]
    limits = ReportLimitsConfig(max_name_chars=8)
    message = report_to_proto(tenant_report({("t" * 9, "GET <*>"): 3}), "r1", 1)
    with pytest.raises(InvalidReport, match=r"counts\[0\]: service, pattern_id or tenant"):
        check_report(message, limits, 0)
    del message.counts[:]
    with pytest.raises(InvalidReport, match=r"patterns\[0\]: service, pattern_id or tenant"):
        check_report(message, limits, 0)


def test_the_example_in_the_docs_splits_as_they_say():
    split = plan_tenant(
        "team-b",
        {"api": 3000.0, "db": 1000.0},
        TenantBudget(target_records_per_second=200.0),
        0.8,
        {"api": 500.0},
    )
    assert split.scale == pytest.approx(200 / 550)
    assert split.service_budgets == {
        "api": pytest.approx(181.8, abs=0.1),
        "db": pytest.approx(18.2, abs=0.1),
    }


def test_tenant_names_the_environment_cannot_spell_come_as_one_yaml_mapping():
    environ = {"LIPSERVICE_ANALYSIS__TENANTS": "{team-a: {target_reduction: 0.9}}"}
    tenants = load_settings(None, environ=environ).analysis.tenants
    assert tenants == {"team-a": TenantBudget(target_reduction=0.9)}
