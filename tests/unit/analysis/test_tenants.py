"""Per-tenant budgets: the settings, the split of a tenant's cap over its services, and plans
over two tenants, one ten times louder than the other, with the same service names."""

from __future__ import annotations

import json

import pytest

from lipservice_otel.analysis.anomaly import Baseline
from lipservice_otel.analysis.config import AnalysisConfig, TenantBudget
from lipservice_otel.analysis.llm.advisor import STATUS_DISABLED, Consultation
from lipservice_otel.analysis.plan import PatternView, Planning, plan
from lipservice_otel.analysis.state import AnalysisState, PatternState
from lipservice_otel.analysis.tenants import plan_tenant
from lipservice_otel.policy.model import Policy
from lipservice_otel.settings import load_settings
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
