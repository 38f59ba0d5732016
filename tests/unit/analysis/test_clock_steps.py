"""The wall clock steps an hour back or forward (NTP, a resumed VM) under the analysis.

A machine whose wall clock and monotonic clock are both the test's: `tick` is time passing,
`step` moves the wall clock alone. What must not happen: a step back making boosts last an
hour longer than their cooldown or the next interval look a thousand times louder (a storm of
"spike" anomalies); a step forward forgetting every pattern or expiring every boost and
override at once. An override pinned "for 10 minutes" lasts 10 minutes whatever the step.
"""

from __future__ import annotations

import asyncio

import pytest

from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.loop import AnalysisLoop
from lipservice_otel.analysis.state import Override
from lipservice_otel.policy.model import Policy
from lipservice_otel.sampling.aggregates import IntervalReport, PatternCounts, PatternInfo
from lipservice_otel.store.memory import MemoryStore

HOUR_S = 3600.0
INTERVAL_S = 10.0
COOLDOWN_S = 300.0
STEADY = {f"p{i}": int(5000 / (i + 1)) for i in range(10)}
SPIKING = dict(STEADY, p5=STEADY["p5"] * 10)


class Machine:
    def __init__(self) -> None:
        self.unix = 1_800_000_000.0
        self.uptime = 5_000.0

    def wall(self) -> float:
        return self.unix

    def monotonic(self) -> float:
        return self.uptime

    def tick(self, seconds: float) -> None:
        self.unix += seconds
        self.uptime += seconds

    def step(self, seconds: float) -> None:
        self.unix += seconds


def report(volumes: dict[str, int]) -> IntervalReport:
    return IntervalReport(
        counts=[PatternCounts("svc", pid, "info", n, 0) for pid, n in volumes.items()],
        patterns={pid: PatternInfo("svc", f"template {pid} <*>", [f"{pid} 1"]) for pid in volumes},
        overflow_records=0,
    )


def analysis(machine: Machine, store: MemoryStore | None = None) -> AnalysisLoop:
    config = AnalysisConfig(
        interval_s=INTERVAL_S,
        merge_patterns=False,
        anomaly_cooldown_s=COOLDOWN_S,
        pattern_ttl_s=HOUR_S / 2,  # shorter than the step: a step forward would forget all
    )
    return AnalysisLoop(
        config,
        store or MemoryStore(None, 100),
        Policy(),
        wall_clock=machine.wall,
        monotonic_clock=machine.monotonic,
    )


def cycle(loop: AnalysisLoop, machine: Machine, volumes: dict[str, int]):
    machine.tick(INTERVAL_S)
    loop.ingest(report(volumes))
    asyncio.run(loop.cycle())
    return loop.policy, sorted(a.kind for a in loop.anomalies), set(loop.state.patterns)


def reasons(policy: Policy) -> dict[str, str]:
    return {pid: rule.reason for pid, rule in policy.pattern_rules.items()}


@pytest.mark.parametrize("step_s", [-HOUR_S, HOUR_S], ids=["back", "forward"])
def test_a_step_changes_nothing_the_analysis_decides(step_s):
    """Two analyzers fed the same traffic, one on a machine whose wall clock steps: every
    cycle publishes the same rules, reasons and anomalies, and the boost ends on time."""
    steady, stepped = Machine(), Machine()
    loops = analysis(steady), analysis(stepped)
    traffic = [STEADY] * 4 + [SPIKING] + [STEADY] * 3
    for n, volumes in enumerate(traffic):
        if n == 5:  # the spike's boost is running
            stepped.step(step_s)
        assert cycle(loops[0], steady, volumes) == cycle(loops[1], stepped, volumes), n
    boosted = reasons(loops[1].policy)
    assert boosted["p5"] == "anomaly/spike"
    assert all(r != "anomaly/spike" for pid, r in boosted.items() if pid != "p5")
    assert set(loops[1].state.patterns) == set(STEADY), "no pattern forgotten"
    for volumes in [STEADY] * int(COOLDOWN_S / INTERVAL_S):  # the cooldown passes
        assert cycle(loops[0], steady, volumes) == cycle(loops[1], stepped, volumes)
    assert reasons(loops[1].policy)["p5"] == "budget", "the boost ended after its cooldown"


@pytest.mark.parametrize("step_s", [-HOUR_S, HOUR_S], ids=["back", "forward"])
def test_an_override_pinned_for_10_minutes_lasts_10_minutes(step_s):
    machine = Machine()
    loop = analysis(machine)
    for _ in range(3):
        cycle(loop, machine, STEADY)
    machine.step(step_s)
    # What `policy pin --for 600` sends: the expiry on the wall clock of whoever pins it.
    expires = loop.from_wall(machine.wall() + 600)
    asyncio.run(loop.set_override(Override("p0", rate=0.5, expires_at=expires)))
    for _ in range(59):
        cycle(loop, machine, STEADY)
    assert reasons(loop.policy)["p0"] == "override", "expired early"
    for _ in range(2):
        cycle(loop, machine, STEADY)
    assert reasons(loop.policy)["p0"] == "budget", "outlived its 10 minutes"


def test_a_restart_after_a_step_back_keeps_boosts_to_their_cooldown(tmp_path):
    """The wall clock, read again at the restart, is an hour behind what the snapshot says:
    the boost it carries must not last an hour longer, nor its patterns look seen later."""
    machine = Machine()
    store = MemoryStore(str(tmp_path / "analysis.snapshot"), 100)
    loop = analysis(machine, store)
    for volumes in [STEADY] * 4 + [SPIKING]:
        cycle(loop, machine, volumes)
    assert reasons(loop.policy)["p5"] == "anomaly/spike"
    asyncio.run(store.close())

    machine.step(-HOUR_S)
    restarted = analysis(machine, MemoryStore(str(tmp_path / "analysis.snapshot"), 100))
    asyncio.run(restarted.restore())
    cycle(restarted, machine, STEADY)
    now = machine.wall()
    assert all(until <= now + COOLDOWN_S for _, until in restarted.state.boosts.values())
    assert all(p.last_seen <= now for p in restarted.state.patterns.values())
    for _ in range(int(COOLDOWN_S / INTERVAL_S)):
        cycle(restarted, machine, STEADY)
    assert reasons(restarted.policy)["p5"] == "budget"
    assert set(restarted.state.patterns) == set(STEADY)
