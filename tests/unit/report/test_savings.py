"""The savings figures on hand-built analysis states, each figure worked out by hand here."""

from __future__ import annotations

import json

import pytest

from lipservice_otel.analysis.anomaly import Baseline
from lipservice_otel.analysis.state import AnalysisState, PatternState
from lipservice_otel.policy.model import PatternRule, Policy
from lipservice_otel.report.savings import (
    BASIS_PROJECTION,
    BASIS_REALISED,
    GIB,
    Figures,
    Price,
    compute_savings,
    savings_to_dict,
)

DAY = 86_400
MONTH = 30 * DAY


def pattern(
    pid: str,
    records: float,
    size: float,
    counts: dict[str, int],
    kept: float,
    service: str = "api",
) -> PatternState:
    """A pattern whose baselines say `records`/s of `size` bytes each, `kept`/s of them kept."""
    state = PatternState(pid, service, f"template {pid} <*>", 1.0, 2.0, [f"{pid} 1"])
    state.rate = Baseline(records, 0.0, 5)
    state.bytes_rate = Baseline(records * size, 0.0, 5)
    state.kept_rate = Baseline(kept, 0.0, 5)
    state.kept_bytes_rate = Baseline(kept * size, 0.0, 5)
    state.last_counts = counts
    return state


def two_patterns() -> AnalysisState:
    # loud: 100 records/s of 200 bytes, 10% of them ERROR; the receivers kept 12/s.
    # quiet: 1 record/s of 500 bytes, all kept.
    state = AnalysisState()
    state.patterns["loud"] = pattern("loud", 100.0, 200.0, {"info": 90, "error": 10}, 12.0)
    state.patterns["quiet"] = pattern("quiet", 1.0, 500.0, {"info": 5}, 1.0)
    return state


def policy(mode: str) -> Policy:
    return Policy(
        version=7,
        mode=mode,
        pattern_rules={"loud": PatternRule(0.1, "budget"), "quiet": PatternRule(1.0, "rare")},
        learned=True,
    )


def test_shadow_mode_projects_the_current_policy():
    report = compute_savings(two_patterns(), policy("shadow"), Price())
    assert report.mode == "shadow" and report.basis == BASIS_PROJECTION
    assert report.policy_version == 7
    (service,) = report.services
    loud, quiet = service.patterns  # most bytes first
    assert (loud.pattern_id, loud.rate, loud.reason) == ("loud", 0.1, "budget")
    # 90 INFO of 100 at 0.1 and the 10 ERROR at the floor (kept whole): 19% kept.
    kept_share = (90 * 0.1 + 10 * 1.0) / 100
    assert loud.figures.kept_records_per_second == pytest.approx(100 * kept_share)
    assert loud.figures.kept_bytes_per_second == pytest.approx(20_000 * kept_share)
    assert loud.figures.saved_bytes_per_second == pytest.approx(20_000 - 3_800)
    assert loud.figures.saved_bytes_per_day == pytest.approx(16_200 * DAY)
    assert loud.figures.saved_bytes_per_month == pytest.approx(16_200 * MONTH)
    assert quiet.figures.kept_bytes_per_second == pytest.approx(500.0)
    assert quiet.figures.saved_bytes_per_second == 0.0
    # Shares of the service's volume: 101 records/s, 20,500 bytes/s.
    assert loud.record_share == pytest.approx(100 / 101)
    assert loud.byte_share == pytest.approx(20_000 / 20_500)
    assert quiet.byte_share == pytest.approx(500 / 20_500)
    assert service.figures == Figures(101.0, 20_500.0, 20.0, 4_300.0)
    assert service.figures.kept_byte_share == pytest.approx(4_300 / 20_500)
    assert report.totals == service.figures
    assert (service.record_share, service.byte_share) == (1.0, 1.0)
    assert (loud.tenant, service.tenant) == ("", "")


def test_enforce_mode_reports_what_the_receivers_kept():
    report = compute_savings(two_patterns(), policy("enforce"), Price())
    assert report.basis == BASIS_REALISED
    loud, quiet = report.services[0].patterns
    # The kept baselines, not the rate: 12 of 100 records/s, 2,400 of 20,000 bytes/s.
    assert loud.figures.kept_records_per_second == 12.0
    assert loud.figures.kept_bytes_per_second == 2_400.0
    assert loud.figures.saved_bytes_per_second == 17_600.0
    assert loud.figures.kept_record_share == pytest.approx(0.12)
    assert quiet.figures.kept_bytes_per_second == 500.0
    assert report.totals.saved_bytes_per_month == pytest.approx(17_600 * MONTH)


def test_a_price_turns_saved_bytes_into_money():
    report = compute_savings(two_patterns(), policy("enforce"), Price(0.5, "EUR"))
    document = savings_to_dict(report)
    assert (document["price_per_gib"], document["currency"]) == (0.5, "EUR")
    totals = document["totals"]
    assert totals["saved_money_per_day"] == pytest.approx(17_600 * DAY / GIB * 0.5)
    assert totals["saved_money_per_month"] == pytest.approx(17_600 * MONTH / GIB * 0.5)
    quiet = document["services"][0]["patterns"][1]
    assert quiet["saved_money_per_month"] == 0.0
    without = savings_to_dict(compute_savings(two_patterns(), policy("enforce"), Price()))
    assert without["totals"]["saved_money_per_month"] is None
    assert without["totals"]["saved_bytes_per_month"] == pytest.approx(17_600 * MONTH)


def test_the_document_is_json_with_every_figure():
    document = savings_to_dict(compute_savings(two_patterns(), policy("shadow"), Price()))
    assert json.loads(json.dumps(document)) == document
    service = document["services"][0]
    row = service["patterns"][0]
    assert {k: row[k] for k in ("tenant", "service", "pattern_id", "rate", "reason")} == {
        "tenant": "",
        "service": "api",
        "pattern_id": "loud",
        "rate": 0.1,
        "reason": "budget",
    }
    assert row["example"] == "loud 1" and row["template"] == "template loud <*>"
    assert row["records_per_second"] == 100.0 and row["bytes_per_second"] == 20_000.0
    assert row["saved_records_per_second"] == pytest.approx(81.0)
    assert row["kept_byte_share"] == pytest.approx(0.19)
    assert service["saved_bytes_per_second"] == pytest.approx(16_200)


def test_no_traffic_saves_nothing_and_divides_by_nothing():
    empty = compute_savings(AnalysisState(), policy("shadow"), Price(1.0))
    assert empty.services == () and empty.totals == Figures()
    assert empty.totals.kept_record_share == 1.0  # nothing in, nothing dropped
    assert savings_to_dict(empty)["totals"]["saved_money_per_month"] == 0.0
    state = AnalysisState()
    state.patterns["silent"] = pattern("silent", 0.0, 100.0, {}, 0.0)
    (row,) = compute_savings(state, policy("enforce"), Price()).services[0].patterns
    assert (row.record_share, row.byte_share) == (0.0, 0.0)
    assert row.figures.saved_bytes_per_second == 0.0


def test_a_single_pattern_is_its_whole_service():
    state = AnalysisState()
    state.patterns["loud"] = pattern("loud", 50.0, 100.0, {"debug": 10}, 5.0)
    report = compute_savings(state, policy("shadow"), Price())
    (row,) = report.services[0].patterns
    assert (row.record_share, row.byte_share) == (1.0, 1.0)
    # No ERROR in the mix: all of it at 0.1.
    assert row.figures.kept_bytes_per_second == pytest.approx(500.0)
    assert report.totals.saved_bytes_per_day == pytest.approx(4_500 * DAY)


def test_the_projection_follows_merged_patterns_and_templates_boosted_alone():
    state = AnalysisState()
    state.patterns["a"] = pattern("a", 40.0, 100.0, {"info": 4}, 0.0)
    state.patterns["b"] = pattern("b", 10.0, 100.0, {"info": 1}, 0.0)
    state.aliases = {"a": "a", "b": "a"}
    shadow = Policy(
        mode="shadow",
        pattern_rules={"a": PatternRule(0.25, "budget")},
        pattern_aliases={"b": "a"},
        signature_rules={"a": PatternRule(0.25, "budget"), "b": PatternRule(1.0, "anomaly/spike")},
        learned=True,
    )
    (row,) = compute_savings(state, shadow, Price()).services[0].patterns
    assert (row.pattern_id, row.rate, row.reason) == ("a", 0.25, "budget")
    # a at 0.25 (10/s), b whole (10/s): 20 of 50 records/s, 2,000 of 5,000 bytes/s.
    assert row.figures.kept_records_per_second == pytest.approx(20.0)
    assert row.figures.kept_bytes_per_second == pytest.approx(2_000.0)


def test_patterns_the_policy_does_not_know_yet_are_kept_whole():
    state = AnalysisState()
    state.patterns["new"] = pattern("new", 10.0, 100.0, {"info": 3}, 0.0)
    (row,) = compute_savings(state, policy("shadow"), Price()).services[0].patterns
    assert (row.rate, row.reason) == (1.0, "anomaly/new_pattern")
    assert row.figures.saved_bytes_per_second == 0.0


def test_services_come_loudest_first_with_their_share_of_the_total():
    state = two_patterns()
    state.patterns["other"] = pattern("other", 10.0, 50.0, {"info": 1}, 10.0, service="web")
    report = compute_savings(state, policy("enforce"), Price())
    api, web = report.services
    assert (api.service, web.service) == ("api", "web")
    assert web.byte_share == pytest.approx(500 / 21_000)
    assert web.record_share == pytest.approx(10 / 111)
    assert report.totals.bytes_per_second == 21_000.0


def test_tenants_sum_their_services():
    # Two tenants, one ten times louder: each service and pattern row names its tenant.
    state = AnalysisState()
    state.patterns["a"] = pattern("a", 100.0, 100.0, {"info": 1}, 10.0, service="api")
    state.patterns["b"] = pattern("b", 10.0, 100.0, {"info": 1}, 5.0, service="api")
    state.patterns["c"] = pattern("c", 10.0, 100.0, {"info": 1}, 10.0, service="web")
    state.patterns["a"].tenant = "loud-team"
    state.patterns["b"].tenant = state.patterns["c"].tenant = "quiet-team"
    report = compute_savings(state, policy("enforce"), Price())
    loud, quiet = report.tenants
    assert (loud.tenant, quiet.tenant) == ("loud-team", "quiet-team")
    assert loud.figures == Figures(100.0, 10_000.0, 10.0, 1_000.0)
    assert quiet.figures == Figures(20.0, 2_000.0, 15.0, 1_500.0)
    assert (loud.record_share, quiet.byte_share) == (
        pytest.approx(100 / 120),
        pytest.approx(2 / 12),
    )
    # The same service name under two tenants is two services.
    assert [(s.tenant, s.service) for s in report.services] == [
        ("loud-team", "api"),
        ("quiet-team", "api"),
        ("quiet-team", "web"),
    ]
    assert report.services[1].patterns[0].tenant == "quiet-team"
    document = savings_to_dict(report)
    assert [t["tenant"] for t in document["tenants"]] == ["loud-team", "quiet-team"]
    assert document["tenants"][1]["saved_bytes_per_second"] == pytest.approx(500.0)
    # Without a tenant key, one tenant "" holds everything.
    (everyone,) = compute_savings(two_patterns(), policy("enforce"), Price()).tenants
    assert everyone.tenant == "" and everyone.figures.records_per_second == 101.0
