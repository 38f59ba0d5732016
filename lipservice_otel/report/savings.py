"""What the sampling saves: per tenant and service, per pattern, and in total.

Pure functions over what the analysis knows (no I/O, no clock): `compute_savings` reads each
pattern's moving baselines (`PatternState`: records/s, bytes/s, kept records/s, kept bytes/s;
EMAs over analysis cycles) and the current policy, and gives a `SavingsReport`;
`savings_to_dict` turns it into the JSON document of `lipservice-otel report --json` and of the
live page. How each figure is computed is spelled out in docs/savings.md.

- In **shadow** mode nothing is dropped yet: what enforce would keep is a *projection*. Each
  signature pattern's records/s is split by its severity mix in the last interval, and each
  part is kept at the rate the current policy's decision (`Policy.rule_for`) gives it (the
  severity floor whole, a template boosted alone whole, the pattern's rate otherwise); its
  bytes/s are kept in the same proportion (one template's records are about one size).
  Exemptions match single records, so the projection cannot see them.
- In **enforce** mode the figures are *realised*: the kept records/s and bytes/s the receivers
  reported, whatever made them (exemptions and anomaly boosts included).
"""

from __future__ import annotations

from dataclasses import dataclass

from lipservice_otel.analysis.state import AnalysisState, PatternState
from lipservice_otel.policy.model import SEVERITY_LEVELS, Policy

GIB = 2**30
SECONDS_PER_DAY = 86_400
DAYS_PER_MONTH = 30
BASIS_PROJECTION = "projection"  # shadow mode: what the current policy would keep
BASIS_REALISED = "realised"  # enforce mode: what the receivers kept


@dataclass(frozen=True, slots=True)
class Price:
    """What a GiB sent to the backend costs; `per_gib` 0 means no price (bytes only)."""

    per_gib: float = 0.0
    currency: str = "USD"

    def of(self, size_bytes: float) -> float | None:
        """The cost of `size_bytes`, or None without a price."""
        return size_bytes / GIB * self.per_gib if self.per_gib > 0 else None


@dataclass(frozen=True, slots=True)
class Figures:
    """Volumes in and kept, per second; everything else is derived from these four."""

    records_per_second: float = 0.0
    bytes_per_second: float = 0.0
    kept_records_per_second: float = 0.0
    kept_bytes_per_second: float = 0.0

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            self.records_per_second + other.records_per_second,
            self.bytes_per_second + other.bytes_per_second,
            self.kept_records_per_second + other.kept_records_per_second,
            self.kept_bytes_per_second + other.kept_bytes_per_second,
        )

    @property
    def saved_records_per_second(self) -> float:
        return max(self.records_per_second - self.kept_records_per_second, 0.0)

    @property
    def saved_bytes_per_second(self) -> float:
        return max(self.bytes_per_second - self.kept_bytes_per_second, 0.0)

    @property
    def saved_bytes_per_day(self) -> float:
        return self.saved_bytes_per_second * SECONDS_PER_DAY

    @property
    def saved_bytes_per_month(self) -> float:
        return self.saved_bytes_per_day * DAYS_PER_MONTH

    @property
    def kept_record_share(self) -> float:
        """Kept records of all records (1.0 when there are none: nothing is dropped)."""
        return _share(self.kept_records_per_second, self.records_per_second, empty=1.0)

    @property
    def kept_byte_share(self) -> float:
        return _share(self.kept_bytes_per_second, self.bytes_per_second, empty=1.0)


@dataclass(frozen=True, slots=True)
class PatternSavings:
    """One canonical (merged) pattern of a service."""

    tenant: str  # "" when no tenant key is set
    service: str
    pattern_id: str
    template: str
    example: str  # one example body ("" when none was kept)
    rate: float  # the current policy's rate for the pattern
    reason: str  # and why
    figures: Figures
    record_share: float  # of its service's records in
    byte_share: float  # of its service's bytes in


@dataclass(frozen=True, slots=True)
class ServiceSavings:
    tenant: str
    service: str
    figures: Figures  # its patterns' summed
    record_share: float  # of all records in
    byte_share: float  # of all bytes in
    patterns: tuple[PatternSavings, ...]  # most bytes in first


@dataclass(frozen=True, slots=True)
class TenantSavings:
    """One tenant's services summed ("" when no tenant key is set: everything)."""

    tenant: str
    figures: Figures
    record_share: float  # of all records in
    byte_share: float  # of all bytes in


@dataclass(frozen=True, slots=True)
class SavingsReport:
    mode: str  # the current policy's: enforce | shadow
    basis: str  # BASIS_PROJECTION (shadow) | BASIS_REALISED (enforce)
    policy_version: int
    price: Price
    services: tuple[ServiceSavings, ...]  # most bytes in first
    totals: Figures
    tenants: tuple[TenantSavings, ...] = ()  # most bytes in first


def compute_savings(state: AnalysisState, policy: Policy, price: Price) -> SavingsReport:
    """The savings of `policy` over what `state` has learned (see the module docstring)."""
    basis = BASIS_PROJECTION if policy.shadow else BASIS_REALISED
    by_service: dict[tuple[str, str], list[tuple[str, list[PatternState], Figures]]] = {}
    for canonical, members in state.groups().items():
        figures = Figures()
        for member in members:
            figures += (
                projected_figures(member, policy)
                if basis == BASIS_PROJECTION
                else realised_figures(member)
            )
        key = (members[0].tenant, members[0].service)
        by_service.setdefault(key, []).append((canonical, members, figures))
    services = []
    for (tenant, service), patterns in by_service.items():
        total = sum((figures for _, _, figures in patterns), Figures())
        rows = [
            pattern_savings(state, policy, canonical, members, figures, total)
            for canonical, members, figures in patterns
        ]
        rows.sort(key=_loudest_first)
        services.append((tenant, service, total, tuple(rows)))
    totals = sum((total for _, _, total, _ in services), Figures())
    by_tenant: dict[str, Figures] = {}
    for tenant, _, total, _ in services:
        by_tenant[tenant] = by_tenant.get(tenant, Figures()) + total
    return SavingsReport(
        mode=policy.mode,
        basis=basis,
        policy_version=policy.version,
        price=price,
        services=tuple(
            sorted(
                (
                    ServiceSavings(
                        tenant,
                        service,
                        total,
                        _share(total.records_per_second, totals.records_per_second),
                        _share(total.bytes_per_second, totals.bytes_per_second),
                        rows,
                    )
                    for tenant, service, total, rows in services
                ),
                key=_loudest_first,
            )
        ),
        totals=totals,
        tenants=tuple(
            sorted(
                (
                    TenantSavings(
                        tenant,
                        figures,
                        _share(figures.records_per_second, totals.records_per_second),
                        _share(figures.bytes_per_second, totals.bytes_per_second),
                    )
                    for tenant, figures in by_tenant.items()
                ),
                key=_loudest_first,
            )
        ),
    )


def projected_figures(pattern: PatternState, policy: Policy) -> Figures:
    """What enforcing `policy` would keep of one signature pattern's baselines."""
    records = pattern.rate.mean
    counts = pattern.last_counts
    seen = sum(counts.values())
    if seen:
        kept_share = (
            sum(
                n * policy.rule_for(pattern.pattern_id, bucket_severity(bucket)).rate
                for bucket, n in counts.items()
            )
            / seen
        )
    else:
        # No records in the last interval, so no severity mix: the pattern's own rate.
        kept_share = policy.rule_for(pattern.pattern_id, 0).rate
    return Figures(
        records, pattern.bytes_rate.mean, records * kept_share, pattern.bytes_rate.mean * kept_share
    )


def realised_figures(pattern: PatternState) -> Figures:
    """What the receivers reported keeping of one signature pattern."""
    return Figures(
        pattern.rate.mean,
        pattern.bytes_rate.mean,
        pattern.kept_rate.mean,
        pattern.kept_bytes_rate.mean,
    )


def bucket_severity(bucket: str) -> int:
    """The highest SeverityNumber of a severity bucket (0 for `unspecified`): a bucket that
    reaches the severity floor is kept whole, as the analysis' planning counts it."""
    low = SEVERITY_LEVELS.get(bucket)
    return 0 if low is None else low + 3


def pattern_savings(
    state: AnalysisState,
    policy: Policy,
    canonical: str,
    members: list[PatternState],
    figures: Figures,
    service: Figures,
) -> PatternSavings:
    # The pattern's own rule (what `policy show` says), below the severity floor.
    rule = policy.rule_for(canonical, 0)
    return PatternSavings(
        tenant=members[0].tenant,
        service=members[0].service,
        pattern_id=canonical,
        template=state.canonical_templates.get(canonical, members[0].template),
        example=next((e for m in members for e in m.examples), ""),
        rate=rule.rate,
        reason=rule.reason,
        figures=figures,
        record_share=_share(figures.records_per_second, service.records_per_second),
        byte_share=_share(figures.bytes_per_second, service.bytes_per_second),
    )


def figures_to_dict(figures: Figures, price: Price) -> dict:
    """The figures' JSON keys; the money keys are null without a price."""
    return {
        "records_per_second": figures.records_per_second,
        "bytes_per_second": figures.bytes_per_second,
        "kept_records_per_second": figures.kept_records_per_second,
        "kept_bytes_per_second": figures.kept_bytes_per_second,
        "kept_record_share": figures.kept_record_share,
        "kept_byte_share": figures.kept_byte_share,
        "saved_records_per_second": figures.saved_records_per_second,
        "saved_bytes_per_second": figures.saved_bytes_per_second,
        "saved_bytes_per_day": figures.saved_bytes_per_day,
        "saved_bytes_per_month": figures.saved_bytes_per_month,
        "saved_money_per_day": price.of(figures.saved_bytes_per_day),
        "saved_money_per_month": price.of(figures.saved_bytes_per_month),
    }


def savings_to_dict(report: SavingsReport) -> dict:
    """The report as a JSON-ready dict (keys documented in docs/savings.md)."""
    price = report.price
    return {
        "mode": report.mode,
        "basis": report.basis,
        "policy_version": report.policy_version,
        "price_per_gib": price.per_gib,
        "currency": price.currency,
        "totals": figures_to_dict(report.totals, price),
        "tenants": [
            {
                "tenant": tenant.tenant,
                "record_share": tenant.record_share,
                "byte_share": tenant.byte_share,
                **figures_to_dict(tenant.figures, price),
            }
            for tenant in report.tenants
        ],
        "services": [
            {
                "tenant": service.tenant,
                "service": service.service,
                "record_share": service.record_share,
                "byte_share": service.byte_share,
                **figures_to_dict(service.figures, price),
                "patterns": [
                    {
                        "tenant": p.tenant,
                        "service": p.service,
                        "pattern_id": p.pattern_id,
                        "template": p.template,
                        "example": p.example,
                        "rate": p.rate,
                        "reason": p.reason,
                        "record_share": p.record_share,
                        "byte_share": p.byte_share,
                        **figures_to_dict(p.figures, price),
                    }
                    for p in service.patterns
                ],
            }
            for service in report.services
        ],
    }


def _share(part: float, whole: float, empty: float = 0.0) -> float:
    return part / whole if whole > 0 else empty


def _loudest_first(row: PatternSavings | ServiceSavings | TenantSavings) -> tuple:
    # Names break ties, so equal rows come in the same order on every call.
    service = "" if isinstance(row, TenantSavings) else row.service
    name = row.pattern_id if isinstance(row, PatternSavings) else ""
    figures = row.figures
    return (-figures.bytes_per_second, -figures.records_per_second, row.tenant, service, name)
