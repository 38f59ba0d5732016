"""CurrentSavings: one savings report per cycle and policy version, exported as gauges.

A real analysis loop over a memory store learns two tenants' cycles; the gauges are read back
from the process's Prometheus registry and compared with the report's own figures.
"""

from __future__ import annotations

import asyncio

import pytest

from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.loop import AnalysisLoop
from lipservice_otel.policy.model import Policy
from lipservice_otel.report import current
from lipservice_otel.report.current import MONEY_GAUGE, SAVINGS_GAUGES, CurrentSavings
from lipservice_otel.report.savings import BASIS_PROJECTION, BASIS_REALISED, GIB, Price
from lipservice_otel.sampling.aggregates import IntervalReport, PatternCounts, PatternInfo
from lipservice_otel.store.memory import MemoryStore
from lipservice_otel.telemetry import Telemetry

SIZE = 100  # bytes a record
CYCLE_S = 10.0
TTL_S = 60.0


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def interval(per_tenant: dict[str, int], kept_share: float = 1.0) -> IntervalReport:
    counts, patterns = [], {}
    for tenant, records in per_tenant.items():
        kept = round(records * kept_share)
        pattern = f"p-{tenant}"
        counts.append(
            PatternCounts(
                "api", pattern, "info", records, kept, records * SIZE, kept * SIZE, tenant
            )
        )
        patterns[pattern] = PatternInfo("api", f"{pattern} <*>", [f"{pattern} 1"], tenant)
    return IntervalReport(counts=counts, patterns=patterns, overflow_records=0)


class Analysis:
    def __init__(self, mode: str, price: Price | None = None) -> None:
        self.clock = Clock()
        self.telemetry = Telemetry()
        store = MemoryStore(None, history_limit=10)
        self.loop = AnalysisLoop(
            AnalysisConfig(pattern_ttl_s=TTL_S), store, Policy(version=1, mode=mode), self.clock
        )
        self.savings = CurrentSavings(self.loop, price or Price(), self.telemetry)

    async def cycle(self, report: IntervalReport) -> None:
        self.loop.ingest(report)
        self.clock.now += CYCLE_S
        await self.loop.cycle()
        await self.savings.refresh()

    def gauge(self, name: str, **labels: str) -> float | None:
        return self.telemetry.registry.get_sample_value(name, labels)


def test_the_gauges_are_the_reports_tenant_figures():
    async def run():
        analysis = Analysis("shadow", Price(0.5, "EUR"))
        await analysis.cycle(interval({"alpha": 20_000, "beta": 2_000}))
        return analysis, await analysis.savings.current()

    analysis, report = asyncio.run(run())
    assert report.basis == BASIS_PROJECTION
    assert {t.tenant for t in report.tenants} == {"alpha", "beta"}
    for tenant in report.tenants:
        labels = {"tenant": tenant.tenant, "basis": BASIS_PROJECTION}
        for name, field in SAVINGS_GAUGES.items():
            assert analysis.gauge(name, **labels) == getattr(tenant.figures, field), name
        money = analysis.gauge(MONEY_GAUGE, **labels, currency="EUR")
        assert money == pytest.approx(tenant.figures.saved_bytes_per_month / GIB * 0.5)
    loud = analysis.gauge(
        "lipservice_analysis_received_records_per_second", tenant="alpha", basis="projection"
    )
    assert loud == pytest.approx(20_000 / CYCLE_S)
    received = analysis.gauge(
        "lipservice_analysis_received_bytes_per_second", tenant="beta", basis="projection"
    )
    assert received == pytest.approx(2_000 * SIZE / CYCLE_S)
    # The learned rates drop some of the loud tenant: savings are there, and add up.
    saved = analysis.gauge(
        "lipservice_analysis_saved_bytes_per_second", tenant="alpha", basis="projection"
    )
    kept = analysis.gauge(
        "lipservice_analysis_kept_bytes_per_second", tenant="alpha", basis="projection"
    )
    assert saved > 0 and saved + kept == pytest.approx(20_000 * SIZE / CYCLE_S)


def test_without_a_price_there_is_no_money_gauge():
    async def run():
        analysis = Analysis("shadow")
        await analysis.cycle(interval({"": 1_000}))
        return analysis

    analysis = asyncio.run(run())
    assert analysis.gauge(
        "lipservice_analysis_received_records_per_second", tenant="", basis="projection"
    ) == pytest.approx(100.0)
    exposed = {s.name for m in analysis.telemetry.registry.collect() for s in m.samples}
    assert MONEY_GAUGE not in exposed


def test_one_computation_serves_every_reader_until_the_next_cycle(monkeypatch):
    computed = []
    compute = current.compute_savings

    def counting(state, policy, price):
        computed.append(policy.version)
        return compute(state, policy, price)

    monkeypatch.setattr(current, "compute_savings", counting)

    async def run():
        analysis = Analysis("shadow")
        await analysis.cycle(interval({"alpha": 1_000}))
        first = await asyncio.gather(*(analysis.savings.current() for _ in range(5)))
        assert len(computed) == 1 and all(report is first[0] for report in first)
        await analysis.cycle(interval({"alpha": 1_000}))
        second = await analysis.savings.current()
        assert len(computed) == 2 and second is not first[0]

    asyncio.run(run())


def test_series_of_a_forgotten_tenant_or_an_old_basis_are_removed():
    async def run():
        analysis = Analysis("shadow")
        await analysis.cycle(interval({"alpha": 1_000, "beta": 1_000}))
        before = analysis.gauge(
            "lipservice_analysis_saved_bytes_per_second", tenant="beta", basis=BASIS_PROJECTION
        )
        # Enforce mode from now on, and beta unseen past pattern_ttl_s: forgotten.
        await analysis.loop.set_base(Policy(version=2, mode="enforce"))
        analysis.clock.now += 2 * TTL_S
        await analysis.cycle(interval({"alpha": 1_000}, kept_share=0.5))
        return analysis, before

    analysis, before = asyncio.run(run())
    assert before is not None
    for name in SAVINGS_GAUGES:
        assert analysis.gauge(name, tenant="beta", basis=BASIS_PROJECTION) is None, name
        assert analysis.gauge(name, tenant="beta", basis=BASIS_REALISED) is None, name
        assert analysis.gauge(name, tenant="alpha", basis=BASIS_PROJECTION) is None, name
        assert analysis.gauge(name, tenant="alpha", basis=BASIS_REALISED) is not None, name


def test_a_replica_that_stops_writing_withdraws_its_gauges():
    async def run():
        analysis = Analysis("shadow", Price(0.5, "EUR"))
        await analysis.cycle(interval({"alpha": 1_000}))
        assert (
            analysis.gauge(
                "lipservice_analysis_saved_bytes_per_second", tenant="alpha", basis="projection"
            )
            is not None
        )
        analysis.savings.withdraw()
        return analysis

    analysis = asyncio.run(run())
    exposed = {s.name for m in analysis.telemetry.registry.collect() for s in m.samples}
    assert not exposed & {*SAVINGS_GAUGES, MONEY_GAUGE}
