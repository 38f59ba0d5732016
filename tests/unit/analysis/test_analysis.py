"""The analysis loop's pieces on synthetic reports with a controlled clock."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from lipservice_otel.analysis.anomaly import Baseline, detect_error_surge, detect_spike
from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.loop import AnalysisLoop
from lipservice_otel.analysis.rules import PatternLoad, allocate_keeps, allocate_service
from lipservice_otel.analysis.state import AnalysisState, Override, PatternState, SnapshotError
from lipservice_otel.control.codec import report_from_proto, report_to_proto
from lipservice_otel.policy.codec import policy_from_bytes, policy_to_bytes
from lipservice_otel.policy.document import policy_from_document
from lipservice_otel.policy.model import Exemption, PatternRule, Policy
from lipservice_otel.sampling.aggregates import IntervalReport, PatternCounts, PatternInfo
from lipservice_otel.store.memory import MemoryStore
from lipservice_otel.telemetry import Telemetry
from lipservice_otel.validation import ConfigError


def test_allocation_spends_the_budget_with_log_weights():
    volumes = {"heavy": 10_000.0, "medium": 100.0, "light": 2.0}
    keeps = allocate_keeps(volumes, budget=500.0, floor=0.5)
    assert sum(keeps.values()) == pytest.approx(500.0, rel=1e-3)
    assert keeps["light"] == 2.0  # quiet patterns stay whole
    assert keeps["heavy"] > keeps["medium"]
    # Log weighting: 100x the volume buys about log-ratio more keeps, not 100x.
    assert keeps["heavy"] / keeps["medium"] < 5


def test_floors_win_over_a_tiny_budget():
    keeps = allocate_keeps({"a": 100.0, "b": 100.0}, budget=0.1, floor=1.0)
    assert keeps == {"a": 1.0, "b": 1.0}


def test_service_allocation_reasons_and_target():
    loads = [
        PatternLoad("noisy", 900.0, 0.0),
        PatternLoad("errors", 0.0, 50.0),
        PatternLoad("rare", 0.1, 0.0),
        PatternLoad("spiking", 40.0, 0.0, fixed_rate=1.0, fixed_reason="anomaly/spike"),
    ]
    allocations = allocate_service(loads, 0.8, None, min_examples_per_interval=5, interval_s=10)
    assert allocations["rare"].reason == "rare" and allocations["rare"].rate == 1.0
    assert allocations["spiking"].rate == 1.0
    assert allocations["noisy"].reason == "budget"
    # The boosted pattern is kept on top of the target; the rest share 20 % of their volume.
    kept = 900 * allocations["noisy"].rate + 50 + 0.1
    assert kept == pytest.approx(0.2 * 950.1, rel=0.05)


def test_target_records_per_second_replaces_the_reduction():
    loads = [PatternLoad("noisy", 1000.0, 0.0)]
    allocations = allocate_service(loads, 0.8, 10.0, 5, 10)
    assert allocations["noisy"].rate == pytest.approx(0.01)


def test_spike_needs_both_ratio_and_deviation():
    steady = Baseline()
    for value in (100, 102, 98, 101, 99):
        steady.update(value, 0.3)
    assert detect_spike(steady, 110, 1100, 10, 3.0, 4.0, 20) is None
    found = detect_spike(steady, 1000, 10_000, 10, 3.0, 4.0, 20)
    assert found is not None and found[0] == "critical"
    quiet = Baseline()
    for value in (0.1, 0.1, 0.1):
        quiet.update(value, 0.3)
    assert detect_spike(quiet, 0.4, 4, 10, 3.0, 4.0, 20) is None  # too few records


def test_error_surge():
    share = Baseline()
    for value in (0.01, 0.012, 0.009):
        share.update(value, 0.3)
    assert detect_error_surge(share, 0.02, 100, 0.05, 20) is None
    assert detect_error_surge(share, 0.30, 300, 0.05, 20)[0] == "critical"


def test_baseline_tracks_mean_and_variance():
    baseline = Baseline()
    for value in [10.0, 20.0] * 50:
        baseline.update(value, 0.1)
    assert baseline.mean == pytest.approx(15.0, abs=1.0)
    assert baseline.stddev == pytest.approx(5.0, abs=1.0)


def test_policy_survives_the_wire_format():
    policy = policy_from_document(
        {
            "mode": "shadow",
            "severity_rates": {"debug": 0.1},
            "exemptions": [{"name": "audit", "attribute": "audit", "matches": "^y"}],
        },
        version=7,
    )
    policy = Policy(
        **{
            **{f: getattr(policy, f) for f in policy.__dataclass_fields__},
            "pattern_rules": {"abc": PatternRule(0.25, "budget", 12.5)},
            "pattern_aliases": {"x": "abc"},
            "learned": True,
            "summary": "s",
        }
    )
    again = policy_from_bytes(policy_to_bytes(policy))
    assert again.version == 7 and again.mode == "shadow" and again.learned
    assert again.pattern_rules == {"abc": PatternRule(0.25, "budget", 12.5)}
    assert again.pattern_aliases == {"x": "abc"}
    assert again.severity_rates == {"debug": 0.1}
    assert again.exemptions[0].matches_value("yes")


def test_report_survives_the_wire_format():
    report = IntervalReport(
        counts=[PatternCounts("svc", "p1", "info", 10, 2)],
        patterns={"p1": PatternInfo("svc", "hello <*>", ["hello 1"])},
        overflow_records=3,
    )
    again = report_from_proto(report_to_proto(report, "r1", 4))
    assert again == report


def test_state_snapshot_round_trip_and_errors():
    state = AnalysisState(cycles=3)
    state.error_share["svc"] = Baseline(0.1, 0.01, 4)
    state.boosts["p"] = ("anomaly/spike", 123.0)
    exemption = Exemption("audit", "attribute", "audit", equals="true")
    state.overrides["exemption/audit"] = Override("exemption/audit", exemption=exemption)
    for pid, template in (("p", "user <*> logged in"), ("q", 'caf\u00e9 "ferm\u00e9" \\ <*>')):
        state.patterns[pid] = PatternState(
            pid, "svc", template, 1.0, 2.0, [template], Baseline(3.0, 1.0, 2), {"info": 7}
        )
    blob = state.to_bytes()
    document = json.loads(blob)  # the schema-1 document, written a pattern at a time
    assert document["schema"] == 1 and len(document["patterns"]) == 2
    assert document["patterns"][1]["template"] == 'caf\u00e9 "ferm\u00e9" \\ <*>'
    again = AnalysisState.from_bytes(blob)
    assert again.cycles == 3 and again.boosts == state.boosts
    assert again.patterns == state.patterns
    assert again.overrides["exemption/audit"].exemption == exemption
    assert AnalysisState.from_bytes(AnalysisState().to_bytes()) == AnalysisState()
    with pytest.raises(SnapshotError, match="schema"):
        AnalysisState.from_bytes(b'{"schema": 99}')
    with pytest.raises(SnapshotError, match="not valid JSON"):
        AnalysisState.from_bytes(b"\x00garbage")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def report(volumes: dict[str, int], service: str = "svc", bucket: str = "info") -> IntervalReport:
    return IntervalReport(
        counts=[PatternCounts(service, pid, bucket, n, 0) for pid, n in volumes.items()],
        patterns={
            pid: PatternInfo(service, f"template {pid} <*>", [f"{pid} 1"]) for pid in volumes
        },
        overflow_records=0,
    )


STEADY = {f"p{i}": int(5000 / (i + 1)) for i in range(10)}  # Zipf-like, per 10 s interval


def run_cycles(loop: AnalysisLoop, clock: Clock, volumes: dict[str, int], cycles: int):
    policies = []
    for _ in range(cycles):
        clock.now += 10
        loop.ingest(report(volumes))
        policies.append(asyncio.run(loop.cycle()))
    return policies


def expected_reduction(policy: Policy, volumes: dict[str, int]) -> float:
    kept = sum(n * policy.pattern_rules[pid].rate for pid, n in volumes.items())
    return 1 - kept / sum(volumes.values())


def make_loop(clock: Clock, **config) -> AnalysisLoop:
    settings = AnalysisConfig(interval_s=10, merge_patterns=False, **config)
    return AnalysisLoop(settings, MemoryStore(None, 100), Policy(), clock=clock)


def test_loop_converges_to_the_target_and_boosts_anomalies():
    clock = Clock()
    loop = make_loop(clock)
    run_cycles(loop, clock, STEADY, 4)
    policy = loop.policy
    assert policy.learned
    assert expected_reduction(policy, STEADY) == pytest.approx(0.8, abs=0.03)
    assert policy.pattern_rules["p0"].rate < policy.pattern_rules["p9"].rate

    spiking = dict(STEADY, p5=STEADY["p5"] * 10, fresh=50)
    (spiked,) = run_cycles(loop, clock, spiking, 1)
    assert spiked.pattern_rules["p5"].rate == 1.0
    assert spiked.pattern_rules["p5"].reason == "anomaly/spike"
    assert spiked.pattern_rules["fresh"].reason == "anomaly/new_pattern"
    assert {a.kind for a in loop.anomalies} == {"spike", "new_pattern"}
    # After the cooldown the boosts expire and the budget rules return.
    clock.now += 400
    run_cycles(loop, clock, STEADY, 3)
    assert loop.policy.pattern_rules["p5"].reason == "budget"


def test_first_learned_version_follows_the_configured_base():
    clock = Clock()
    base = policy_from_document({}, version=1)  # what serve runs before anything is learned
    loop = AnalysisLoop(AnalysisConfig(interval_s=10), MemoryStore(None, 100), base, clock=clock)
    first, second = run_cycles(loop, clock, STEADY, 2)
    assert first.version == 2 and first.learned
    assert second is None or second.version == 3


def test_unchanged_traffic_publishes_no_new_version():
    clock = Clock()
    loop = make_loop(clock)
    policies = run_cycles(loop, clock, STEADY, 8)
    assert policies[0] is not None
    assert policies[-1] is None  # stable volumes, stable rates, no churn


def test_override_pins_a_rate_until_it_expires():
    clock = Clock()
    loop = make_loop(clock)
    run_cycles(loop, clock, STEADY, 3)
    pinned = asyncio.run(loop.set_override(Override("p0", rate=0.5, expires_at=clock.now + 30)))
    assert pinned.pattern_rules["p0"] == PatternRule(
        0.5, "override", pytest.approx(500.0, rel=0.05)
    )
    clock.now += 60
    run_cycles(loop, clock, STEADY, 1)
    assert loop.policy.pattern_rules["p0"].reason == "budget"


def test_explain_and_history():
    clock = Clock()
    loop = make_loop(clock)
    run_cycles(loop, clock, STEADY, 3)
    view = loop.explain("p0")
    assert view.reason == "budget" and "service budget" in view.explanation
    assert math.isclose(view.volume_per_second, STEADY["p0"] / 10, rel_tol=0.05)
    history = asyncio.run(loop._store.history(10))
    assert history[0].version == loop.policy.version
    assert history[-1].summary.startswith("10 patterns")


def test_memory_store_snapshot_resumes_policy_history_and_state(tmp_path):
    path = str(tmp_path / "analysis.snapshot")
    clock = Clock()
    settings = AnalysisConfig(interval_s=10, merge_patterns=False)
    store = MemoryStore(path, 100)
    loop = AnalysisLoop(settings, store, Policy(), clock=clock)
    run_cycles(loop, clock, STEADY, 3)
    asyncio.run(store.close())  # shutdown writes the snapshot

    restarted_store = MemoryStore(path, 100)
    restarted = AnalysisLoop(settings, restarted_store, Policy(), clock=clock)
    asyncio.run(restarted.restore())
    assert restarted.policy == loop.policy
    assert set(restarted.state.patterns) == set(loop.state.patterns)
    assert asyncio.run(restarted_store.history(10)) == asyncio.run(store.history(10))
    # Known patterns are not "new" to the restarted analyzer.
    run_cycles(restarted, clock, STEADY, 1)
    current = restarted.policy
    assert all(rule.reason != "anomaly/new_pattern" for rule in current.pattern_rules.values())
    assert current.version >= loop.policy.version


def test_unreadable_snapshot_is_a_clear_error(tmp_path):
    path = tmp_path / "analysis.snapshot"
    path.write_bytes(b"not a snapshot")
    with pytest.raises(ConfigError, match=r"store\.snapshot_file: .* not a lipservice snapshot"):
        MemoryStore(str(path), 100)


def counting_loop(clock: Clock, store=None, **config) -> tuple[AnalysisLoop, Telemetry]:
    telemetry = Telemetry()
    settings = AnalysisConfig(interval_s=10, merge_patterns=False, **config)
    store = store or MemoryStore(None, 100)
    return AnalysisLoop(settings, store, Policy(), clock=clock, telemetry=telemetry), telemetry


def one_offs(cycle: int, count: int) -> dict[str, int]:
    """`count` templates never seen before, one record each (a flood of distinct templates)."""
    return {f"flood{cycle}-{n}": 1 for n in range(count)}


def test_a_flood_keeps_boosts_to_tracked_patterns_and_spares_the_steady_ones():
    clock = Clock()
    loop, telemetry = counting_loop(clock, max_patterns=40)
    run_cycles(loop, clock, STEADY, 2)
    for cycle in range(6):
        # More than max_patterns seen in one interval: some of this very cycle must go.
        run_cycles(loop, clock, {**STEADY, **one_offs(cycle, 35)}, 1)
        tracked = {loop.state.aliases.get(pid, pid) for pid in loop.state.patterns}
        assert len(tracked) <= 40
        # Every one-off was boosted as new; the boosts of the forgotten ones went with them.
        assert set(loop.state.boosts) <= tracked
        assert 0 < len(loop.state.boosts) <= 40
        # The quietest go first: the steady patterns stay known, with their budget rates.
        assert set(STEADY) <= tracked
        assert all(loop.policy.pattern_rules[pid].reason != "anomaly/new_pattern" for pid in STEADY)
    assert len(loop.state.judgements) == 0
    forgotten = telemetry.value("lipservice_analysis_forgotten_patterns", reason="max_patterns")
    assert forgotten == 10 + 6 * 35 - 40
    assert telemetry.value("lipservice_analysis_forgotten_patterns", reason="ttl") == 0


def test_patterns_past_ttl_are_counted_as_forgotten():
    clock = Clock()
    loop, telemetry = counting_loop(clock, pattern_ttl_s=100)
    run_cycles(loop, clock, STEADY, 1)
    run_cycles(loop, clock, {"p0": 500}, 11)
    assert set(loop.state.patterns) == {"p0"}
    assert telemetry.value("lipservice_analysis_forgotten_patterns", reason="ttl") == 9


def test_cycles_and_their_duration_are_counted_but_regenerations_are_not():
    clock = Clock()
    loop, telemetry = counting_loop(clock)
    run_cycles(loop, clock, STEADY, 3)
    assert telemetry.value("lipservice_analysis_cycles") == 3
    assert telemetry.value("lipservice_analysis_cycle_duration") > 0
    asyncio.run(loop.regenerate())
    assert telemetry.value("lipservice_analysis_cycles") == 3
    # The advisor is off: no call is counted.
    assert telemetry.value("lipservice_analysis_llm_calls") == 0


def test_new_patterns_past_the_cycle_cap_wait_for_a_later_cycle_loudest_first():
    clock = Clock()
    loop, telemetry = counting_loop(clock, max_new_patterns_per_cycle=12)
    run_cycles(loop, clock, STEADY, 2)
    newcomers = {f"new{n}": 20 + n for n in range(20)}
    # Two receivers' reports in one cycle share its room: 8 + 4 taken, the loudest first.
    clock.now += 10
    loop.ingest(report(dict(list(newcomers.items())[:8])))
    loop.ingest(report({**STEADY, **dict(list(newcomers.items())[8:])}))
    policy = asyncio.run(loop.cycle())
    learned = {pid for pid in loop.state.patterns if pid.startswith("new")}
    assert learned == {f"new{n}" for n in (*range(8), *range(16, 20))}
    assert telemetry.value("lipservice_analysis_deferred_patterns") == 8
    # What was left waits for no rule: the learned policy keeps unknown patterns whole.
    assert "new8" not in policy.pattern_rules
    assert policy.rule_for("new8", 9).reason == "anomaly/new_pattern"
    # Known patterns were counted as usual in that cycle.
    assert policy.pattern_rules["p0"].reason == "budget"
    assert policy.pattern_rules["p0"].baseline_per_second > 0
    # The next cycle takes the rest.
    run_cycles(loop, clock, {**STEADY, **newcomers}, 1)
    assert set(newcomers) <= set(loop.state.patterns)
    assert telemetry.value("lipservice_analysis_deferred_patterns") == 8


def test_a_store_that_cannot_read_state_back_is_not_given_it(tmp_path):
    clock = Clock()
    volatile = MemoryStore(None, 100)
    loop, _ = counting_loop(clock, volatile)
    run_cycles(loop, clock, STEADY, 2)
    assert not volatile.keeps_state and asyncio.run(volatile.load_state()) is None

    persisted = MemoryStore(str(tmp_path / "analysis.snapshot"), 100)
    loop, _ = counting_loop(clock, persisted)
    run_cycles(loop, clock, STEADY, 2)
    state = AnalysisState.from_bytes(asyncio.run(persisted.load_state()))
    assert set(state.patterns) == set(STEADY)


class AnnouncingStore(MemoryStore):
    """Announces every saved version to the loop while the save is still under way, as
    Redis delivers a writer's own pub/sub message to its watch during the cycle."""

    def __init__(self) -> None:
        super().__init__(None, 100)
        self.loop: AnalysisLoop | None = None
        self.state_loads = 0
        self.announced: list[asyncio.Task] = []

    async def save_policy(self, policy: Policy) -> None:
        await super().save_policy(policy)
        self.announced.append(asyncio.create_task(self.loop.adopt(policy)))
        await asyncio.sleep(0)  # the watch's callback runs before the cycle goes on

    async def load_state(self) -> bytes | None:
        self.state_loads += 1
        return await super().load_state()


def test_the_writer_does_not_adopt_its_own_version_announced_during_the_cycle():
    clock = Clock()
    store = AnnouncingStore()
    loop = AnalysisLoop(
        AnalysisConfig(interval_s=10, merge_patterns=False), store, Policy(), clock=clock
    )
    store.loop = loop
    published: list[int] = []
    loop.subscribe(lambda policy: published.append(policy.version))

    async def cycles():
        for n in range(3):
            clock.now += 10
            loop.ingest(report({**STEADY, f"new{n}": 100}))  # a new pattern: a new version
            await loop.cycle()
        await asyncio.gather(*store.announced)

    asyncio.run(cycles())
    assert len(store.announced) == 3  # each version was announced back to its writer ...
    assert published == [1, 2, 3]  # ... and went to the receivers once
    assert store.state_loads == 0


def test_a_newer_version_from_another_writer_is_adopted_with_its_state():
    clock = Clock()
    store = MemoryStore(None, 100)
    loop = AnalysisLoop(AnalysisConfig(interval_s=10), store, Policy(), clock=clock)
    published: list[int] = []
    loop.subscribe(lambda policy: published.append(policy.version))
    asyncio.run(loop.adopt(Policy(version=7, learned=True)))
    asyncio.run(loop.adopt(Policy(version=5, learned=True)))  # older: a late announcement
    assert published == [7] and loop.policy.version == 7
