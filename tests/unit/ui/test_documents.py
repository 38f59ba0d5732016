"""The API's documents from hand-built inputs: pattern rows, pins, the summary."""

from __future__ import annotations

from lipservice_otel.analysis.anomaly import Baseline
from lipservice_otel.analysis.state import AnalysisState, Override, PatternState
from lipservice_otel.policy.model import Exemption, PatternRule, Policy
from lipservice_otel.report.savings import Price, compute_savings
from lipservice_otel.ui.api import (
    pattern_rows,
    pins_document,
    summary_document,
    wall_converter,
    with_sparklines,
)
from lipservice_otel.ui.history import Point


def state_of(*patterns: tuple[str, str, str, float]) -> AnalysisState:
    state = AnalysisState()
    for pid, tenant, service, records in patterns:
        pattern = PatternState(pid, service, f"{pid} <*>", 1.0, 2.0, [f"{pid} 7"], tenant=tenant)
        pattern.rate = Baseline(records, 0.0, 3)
        pattern.bytes_rate = Baseline(records * 100, 0.0, 3)
        pattern.kept_rate = Baseline(records / 10, 0.0, 3)
        pattern.kept_bytes_rate = Baseline(records * 10, 0.0, 3)
        state.patterns[pid] = pattern
    return state


POLICY = Policy(
    version=4,
    pattern_rules={"a": PatternRule(0.1, "budget"), "b": PatternRule(0.5, "override")},
    learned=True,
)


def test_pattern_rows_carry_tenant_figures_and_the_members_sparkline():
    report = compute_savings(
        state_of(("a", "team-a", "api", 50.0), ("b", "team-b", "web", 5.0)), POLICY, Price()
    )
    lines = {frozenset({"a", "a-member"}): [1, 2, 3]}
    rows = with_sparklines(
        pattern_rows(report), {"a": ("a-member",)}, lambda ids: lines.get(frozenset(ids))
    )
    by_id = {row["pattern_id"]: row for row in rows}
    a, b = by_id["a"], by_id["b"]
    assert (a["tenant"], a["service"], a["rate"], a["reason"]) == ("team-a", "api", 0.1, "budget")
    assert (a["records_per_second"], a["bytes_per_second"]) == (50.0, 5000.0)
    assert a["example"] == "a 7"
    assert (a["sparkline"], a["window_records"]) == ([1, 2, 3], 6)
    assert (b["tenant"], b["sparkline"], b["window_records"]) == ("team-b", None, None)


def test_pins_are_rate_overrides_in_force_soonest_first():
    now = 1000.0
    analysis_now = 50.0  # the analysis clock runs 950 s behind the wall here
    to_wall = wall_converter(lambda unix: unix - 950.0, now)
    assert to_wall(analysis_now) == now
    exemption = Exemption("keep-audit", "attribute", "audit")
    overrides = [
        Override("b", rate=0.5, expires_at=analysis_now + 60, note="for the incident"),
        Override("c", rate=0.0, expires_at=0.0),
        Override("a", rate=1.0, expires_at=analysis_now + 30),
        Override("gone", rate=1.0, expires_at=analysis_now - 1),
        Override("exemption/keep-audit", exemption=exemption),
    ]
    pins = pins_document(overrides, POLICY, to_wall, now)
    assert [(p["pattern_id"], p["expires_unix"], p["in_policy"]) for p in pins] == [
        ("a", 1030.0, False),  # pinned, but its rule says budget: the next version carries it
        ("b", 1060.0, True),
        ("c", None, False),
    ]
    assert pins[1]["note"] == "for the incident"


def test_the_summary_counts_the_window_and_leaves_patterns_out():
    report = compute_savings(state_of(("a", "", "api", 50.0)), POLICY, Price(0.5, "EUR"))
    points = [Point(0.0, 100, 10), Point(60.0, 0, 0), Point(120.0, 30, 30)]
    summary = summary_document(report, POLICY, points, 99.0, 60.0)
    assert summary["window"] == {"seconds": 180.0, "received": 130, "kept": 40, "dropped": 90}
    assert (summary["policy_version"], summary["mode"], summary["last_cycle_unix"]) == (
        4,
        "enforce",
        99.0,
    )
    assert summary["savings"]["currency"] == "EUR"
    assert summary["savings"]["totals"]["saved_bytes_per_second"] == 4500.0
    assert "patterns" not in summary["savings"]["services"][0]
