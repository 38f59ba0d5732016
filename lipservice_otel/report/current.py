"""The savings of what the analysis knows now: one computation per cycle and policy version,
shared by the savings gauges on /metrics, the live page and the `Savings` call.

The state changes only in a cycle and the policy only with a new version, so one
`SavingsReport` serves every reader in between: a page left open, the `lipservice-otel report`
command and a Prometheus scrape all see the same figures, computed once (in `inspect`'s worker
thread, off the event loop). `refresh` runs after each cycle, so the gauges follow the analysis
whether or not anybody looks at the page.
"""

from __future__ import annotations

import asyncio

from lipservice_otel.analysis.anomaly import Anomaly
from lipservice_otel.analysis.loop import AnalysisLoop, ReportedCounts
from lipservice_otel.report.savings import Price, SavingsReport, compute_savings
from lipservice_otel.telemetry import Telemetry

# Per tenant and basis, from each tenant's `Figures` (the report's `tenants`).
SAVINGS_GAUGES = {
    "lipservice_analysis_received_records_per_second": "records_per_second",
    "lipservice_analysis_kept_records_per_second": "kept_records_per_second",
    "lipservice_analysis_saved_records_per_second": "saved_records_per_second",
    "lipservice_analysis_received_bytes_per_second": "bytes_per_second",
    "lipservice_analysis_kept_bytes_per_second": "kept_bytes_per_second",
    "lipservice_analysis_saved_bytes_per_second": "saved_bytes_per_second",
}
# Per tenant, basis and currency; only with report.price_per_gib set.
MONEY_GAUGE = "lipservice_analysis_saved_money_per_month"


class CurrentSavings:
    """Follows the loop's cycles (a `LoopObserver`) and keeps the last report."""

    def __init__(
        self,
        loop: AnalysisLoop,
        price: Price,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._loop = loop
        self.price = price
        self._telemetry = telemetry
        self._cycles = 0
        self._cached: tuple[tuple[int, int | None], SavingsReport] | None = None
        self._computing = asyncio.Lock()  # two readers at once wait for one computation
        self._series: set[tuple[str, ...]] = set()  # (name, label values...) exported
        loop.observe(self)

    # ---- the loop's observer hook ----

    def reported(self, report: ReportedCounts) -> None:
        """Reports change the state only when a cycle folds them in."""

    def cycled(self, anomalies: list[Anomaly]) -> None:
        self._cycles += 1

    # ---- readers ----

    async def current(self) -> SavingsReport:
        """The report of the current cycle and policy version, computed at most once."""
        async with self._computing:
            policy = self._loop.policy
            key = (self._cycles, policy.version if policy is not None else None)
            cached = self._cached
            if cached is not None and cached[0] == key:
                return cached[1]
            price = self.price
            report = await self._loop.inspect(
                lambda state, policy: compute_savings(state, policy, price)
            )
            self._cached = (key, report)
            return report

    async def refresh(self) -> None:
        """After a cycle: the gauges of its report (nothing to do without metrics). Only the
        processes that cycle export them (a standby replica's would count its writer's twice;
        sharded replicas each export their own shards'), so summed over instances they are
        the savings of everything analysed."""
        if self._telemetry is not None:
            self._series = export_savings(self._telemetry, await self.current(), self._series)

    def withdraw(self) -> None:
        """No longer the writer (a standby now): its last gauges go, they are the writer's."""
        if self._telemetry is not None:
            for key in self._series:
                self._telemetry.remove(key[0], **_labels(key))
        self._series = set()


def savings_series(report: SavingsReport) -> dict[tuple[str, ...], float]:
    """Each gauge sample of `report`: (name, tenant, basis[, currency]) -> value."""
    series: dict[tuple[str, ...], float] = {}
    for tenant in report.tenants:
        for name, field in SAVINGS_GAUGES.items():
            series[(name, tenant.tenant, report.basis)] = getattr(tenant.figures, field)
        money = report.price.of(tenant.figures.saved_bytes_per_month)
        if money is not None:
            series[(MONEY_GAUGE, tenant.tenant, report.basis, report.price.currency)] = money
    return series


def export_savings(
    telemetry: Telemetry, report: SavingsReport, exported: set[tuple[str, ...]]
) -> set[tuple[str, ...]]:
    """Set the gauges of `report` and remove the series it no longer has (a tenant forgotten,
    the basis changed with the mode), so there are never more than the tenants tracked."""
    series = savings_series(report)
    for key, value in series.items():
        telemetry.gauge(key[0], **_labels(key)).set(value)
    for key in exported - series.keys():
        telemetry.remove(key[0], **_labels(key))
    return set(series)


def _labels(key: tuple[str, ...]) -> dict[str, str]:
    labels = {"tenant": key[1], "basis": key[2]}
    if len(key) > 3:
        labels["currency"] = key[3]
    return labels
