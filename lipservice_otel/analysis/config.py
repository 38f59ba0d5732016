"""Settings of the analysis loop: cycle, budgets (per service, per tenant), anomaly detection,
merging, error-like floor."""

from __future__ import annotations

from dataclasses import dataclass, field

from lipservice_otel.analysis.llm.config import LlmConfig
from lipservice_otel.sampling.tenant import (
    DEFAULT_MAX_TENANTS,
    DEFAULT_TENANT,
    OTHER_TENANT,
    parse_tenant_key,
)
from lipservice_otel.validation import require


@dataclass(frozen=True, slots=True)
class TenantBudget:
    """One tenant's cap on the records/s it keeps in all (docs/analysis.md#tenants).

    Exactly one of the two is set."""

    # Share of the tenant's records to drop, [0, 1): it keeps (1 - this) x its volume.
    target_reduction: float | None = None
    # Records/s the tenant keeps in all, > 0.
    target_records_per_second: float | None = None

    def validate(self, key: str) -> None:
        require(
            (self.target_reduction is None) != (self.target_records_per_second is None),
            key,
            "set exactly one of target_reduction and target_records_per_second",
        )
        if self.target_reduction is not None:
            require(0 <= self.target_reduction < 1, f"{key}.target_reduction", "must be in [0, 1)")
        if self.target_records_per_second is not None:
            require(
                self.target_records_per_second > 0,
                f"{key}.target_records_per_second",
                "must be > 0",
            )


@dataclass(frozen=True, slots=True)
class AnalysisConfig:
    # Run the analysis loop inside `serve` (no network hop). Ignored with control.connect.
    embedded: bool = True
    # Seconds between analysis cycles (baselines, anomalies, merging, a new policy).
    interval_s: float = 10.0
    # Share of records to drop overall; the budget each service's patterns share.
    target_reduction: float = 0.8
    # service.name -> records/s to keep; replaces target_reduction for that service.
    target_records_per_second: dict[str, float] = field(default_factory=dict)
    # Where a record's tenant comes from: "resource:<attribute>" or "header:<name>" (HTTP
    # header / gRPC metadata key); empty: no tenants. Patterns are budgeted within their tenant.
    tenant_key: str = ""
    # Tenants tracked besides "default" and "other"; further tenants count under "other".
    max_tenants: int = DEFAULT_MAX_TENANTS
    # Tenant name -> its cap (TenantBudget); tenants without one: services budgeted as above.
    tenants: dict[str, TenantBudget] = field(default_factory=dict)
    # Every pattern keeps at least this many records per interval (when it has them).
    min_examples_per_interval: int = 5
    # Weight of the newest interval in the moving baselines (0-1].
    ema_alpha: float = 0.3
    # A spike: rate >= spike_ratio x baseline and spike_z standard deviations above it, with at
    # least spike_min_records records in the interval.
    spike_ratio: float = 3.0
    spike_z: float = 4.0
    spike_min_records: int = 20
    # How long an anomaly keeps its pattern at rate 1.0, in seconds.
    anomaly_cooldown_s: float = 300.0
    # An error surge: a service's ERROR+ share rises this much (absolute) and doubles.
    surge_min_share_increase: float = 0.05
    # Patterns remembered; the least recently seen are forgotten first.
    max_patterns: int = 50_000
    # Patterns not known yet that one cycle takes up, loudest first; the others wait for a
    # later cycle (counted in lipservice_analysis_deferred_patterns).
    max_new_patterns_per_cycle: int = 10_000
    # Patterns unseen this long are forgotten, in seconds.
    pattern_ttl_s: float = 3600.0
    # Merge templates that differ only in word-valued variables (TF-IDF + DBSCAN).
    merge_patterns: bool = True
    # Patterns whose words say something failed keep at least error_like_min_rate and
    # error_like_min_examples_per_interval records, whatever their volume (reason error_like).
    error_like: bool = True
    error_like_min_rate: float = 0.05
    error_like_min_examples_per_interval: int = 20
    # Words that make a template error-like; empty uses the built-in list (docs/severity.md).
    error_like_words: list[str] = field(default_factory=list)
    llm: LlmConfig = field(default_factory=LlmConfig)

    def validate(self, key: str) -> None:
        require(self.interval_s > 0, f"{key}.interval_s", "must be > 0")
        require(0 <= self.target_reduction < 1, f"{key}.target_reduction", "must be in [0, 1)")
        for service, rate in self.target_records_per_second.items():
            require(rate > 0, f"{key}.target_records_per_second.{service}", "must be > 0")
        parse_tenant_key(self.tenant_key, f"{key}.tenant_key")
        require(self.max_tenants >= 1, f"{key}.max_tenants", "must be >= 1")
        named = len(self.tenants.keys() - {DEFAULT_TENANT, OTHER_TENANT})
        require(
            named <= self.max_tenants,
            f"{key}.tenants",
            f"{named} tenants, more than max_tenants ({self.max_tenants})",
        )
        for tenant, budget in self.tenants.items():
            require(bool(tenant), f"{key}.tenants", "tenant names must not be empty")
            budget.validate(f"{key}.tenants.{tenant}")
        require(
            self.min_examples_per_interval >= 0,
            f"{key}.min_examples_per_interval",
            "must be >= 0",
        )
        require(0 < self.ema_alpha <= 1, f"{key}.ema_alpha", "must be in (0, 1]")
        require(self.spike_ratio > 1, f"{key}.spike_ratio", "must be > 1")
        require(self.spike_z > 0, f"{key}.spike_z", "must be > 0")
        require(self.spike_min_records >= 1, f"{key}.spike_min_records", "must be >= 1")
        require(self.anomaly_cooldown_s >= 0, f"{key}.anomaly_cooldown_s", "must be >= 0")
        require(
            0 < self.surge_min_share_increase < 1,
            f"{key}.surge_min_share_increase",
            "must be in (0, 1)",
        )
        require(self.max_patterns >= 1, f"{key}.max_patterns", "must be >= 1")
        require(
            self.max_new_patterns_per_cycle >= 1,
            f"{key}.max_new_patterns_per_cycle",
            "must be >= 1",
        )
        require(self.pattern_ttl_s > 0, f"{key}.pattern_ttl_s", "must be > 0")
        require(0 <= self.error_like_min_rate <= 1, f"{key}.error_like_min_rate", "must be 0-1")
        require(
            self.error_like_min_examples_per_interval >= 0,
            f"{key}.error_like_min_examples_per_interval",
            "must be >= 0",
        )
        require(
            all(word.strip() for word in self.error_like_words),
            f"{key}.error_like_words",
            "words must not be empty",
        )
        self.llm.validate(f"{key}.llm")
