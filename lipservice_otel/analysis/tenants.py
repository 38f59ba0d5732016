"""Per-tenant budgets: a tenant's cap on what it keeps, split over its services.

A gateway in front of many teams must not let one noisy team spend everyone's budget, so
budgets never pool across tenants: each tenant's services are budgeted from that tenant's
own volume, and a tenant with an entry in `analysis.tenants` has a cap on its total:

1. the cap is the tenant's `target_records_per_second`, or (1 - its `target_reduction`) x
   its volume;
2. each of its services gets its own budget as without tenants: the service's
   `analysis.target_records_per_second` when set, else (1 - the tenant's reduction) x the
   service's volume (for a tenant capped in records/s, its reduction is 1 - cap / volume);
3. when those budgets add up to more than the cap they are scaled down in proportion, so the
   cap holds: the tenant's budget wins over a larger service budget.

A tenant without an entry has no cap: its services are budgeted by `analysis.target_reduction`
and `target_records_per_second`, exactly as when there are no tenants. In either case the
floors (severity floor, examples, error-like, anomalies, overrides) are the patterns' own
(rules.py) and may exceed a budget. No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lipservice_otel.analysis.config import TenantBudget
from lipservice_otel.analysis.rules import keep_budget
from lipservice_otel.sampling.tenant import DEFAULT_TENANT, OTHER_TENANT

# Tenants that never take one of the max_tenants places, as in the receivers (sampling/tenant.py):
# no tenant key (""), records without a tenant, and the overflow itself.
UNCOUNTED_TENANTS = frozenset(("", DEFAULT_TENANT, OTHER_TENANT))


def scope_key(tenant: str, service: str) -> str:
    """One key for a service of a tenant (the service name alone without tenants): what the
    analysis keeps per service, such as the ERROR+ share, it keeps per tenant's service."""
    return f"{tenant}\x1e{service}" if tenant else service


@dataclass(frozen=True, slots=True)
class TenantPlan:
    """How one tenant's budget was split over its services (records/s)."""

    tenant: str
    # The budgeted volume (patterns without an override or an anomaly boost), per service.
    volumes: Mapping[str, float]
    # The tenant's cap, or None when it has no entry in analysis.tenants.
    cap: float | None
    # Records/s each service may keep; None: the service's target_reduction applies.
    service_budgets: Mapping[str, float | None]
    # Factor the services' budgets were scaled down by to fit the cap (1.0: they fitted).
    scale: float

    def budget(self, target_reduction: float) -> float:
        """Records/s the tenant may keep in all (its services' budgets after the cap)."""
        return sum(
            keep_budget(self.volumes[service], target_reduction, budget)
            for service, budget in self.service_budgets.items()
        )


def plan_tenant(
    tenant: str,
    volumes: Mapping[str, float],
    budget: TenantBudget | None,
    target_reduction: float,
    service_targets: Mapping[str, float],
) -> TenantPlan:
    """Split `tenant`'s budget over its services' budgeted volumes (records/s)."""
    if budget is None:
        own = {service: service_targets.get(service) for service in volumes}
        return TenantPlan(tenant, volumes, None, own, 1.0)
    total = sum(volumes.values())
    if budget.target_records_per_second is not None:
        cap = budget.target_records_per_second
        reduction = max(0.0, 1.0 - cap / total) if total > 0 else 0.0
    else:
        reduction = budget.target_reduction or 0.0
        cap = (1.0 - reduction) * total
    wanted = {
        service: keep_budget(volume, reduction, service_targets.get(service))
        for service, volume in volumes.items()
    }
    asked = sum(wanted.values())
    # Rounding alone (a records/s cap over services without their own budget) is not a scale.
    scale = cap / asked if asked > cap * (1 + 1e-9) else 1.0
    scaled: dict[str, float | None] = {s: b * scale for s, b in wanted.items()}
    return TenantPlan(tenant, volumes, cap, scaled, scale)


def describe_tenant(plan: TenantPlan) -> str:
    """The tenant's part of a pattern's explanation (empty without a cap)."""
    if plan.cap is None:
        return ""
    text = f"tenant {plan.tenant} cap {plan.cap:.1f}/s of {sum(plan.volumes.values()):.1f}/s"
    if plan.scale < 1.0:
        text += f", its services' budgets scaled by {plan.scale:.3g} to fit"
    return text


@dataclass(slots=True)
class TenantAdmission:
    """Which tenants the analysis tracks: at most `max_tenants` (besides UNCOUNTED_TENANTS),
    first seen first.

    Receivers cap their tenants too, but many receivers together can see more. A new pattern
    of a tenant beyond the cap is learned under OTHER_TENANT (it keeps its id, so receivers'
    records still find its rule). Tenants named in analysis.tenants are always tracked, so a
    sender inventing tenants cannot push a team with a budget out of it.
    """

    max_tenants: int
    tracked: set[str]

    @classmethod
    def of(
        cls, max_tenants: int, configured: Iterable[str], seen: Iterable[str]
    ) -> TenantAdmission:
        return cls(max_tenants, {*configured, *seen})

    def admit(self, tenant: str) -> str:
        """The tenant to learn a new pattern of `tenant` under: its own, or OTHER_TENANT."""
        if tenant in self.tracked or tenant in UNCOUNTED_TENANTS:
            return tenant
        if len(self.tracked - UNCOUNTED_TENANTS) >= self.max_tenants:
            return OTHER_TENANT
        self.tracked.add(tenant)
        return tenant


def tenant_figures(
    views: Iterable[tuple[str, float, float, float]],
) -> dict[str, tuple[float, float, float]]:
    """(tenant, records/s, kept records/s, tenant budget) per pattern -> per tenant: records/s
    in, records/s the rates keep, the tenant's budget."""
    figures: dict[str, tuple[float, float, float]] = {}
    for tenant, volume, kept, budget in views:
        total, total_kept, _ = figures.get(tenant, (0.0, 0.0, 0.0))
        figures[tenant] = (total + volume, total_kept + kept, budget)
    return figures
