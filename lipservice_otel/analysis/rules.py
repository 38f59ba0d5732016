"""Budgeted rules: share a service's keep budget across its patterns.

In the spirit of Refinery's EMA dynamic sampler and Cribl's log mode: every pattern keeps a
floor of examples per interval, and beyond that patterns are weighted by the logarithm of
their volume, so a pattern 10,000x louder keeps only ~10x more. Heavy hitters pay for the
savings; quiet patterns stay whole.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

REASON_BUDGET = "budget"
REASON_RARE = "rare"
REASON_OVERRIDE = "override"
REASON_ERROR_LIKE = "error_like"

_SEARCH_STEPS = 60


@dataclass(frozen=True, slots=True)
class PatternLoad:
    """One pattern's volume in records/s, split by whether the rate applies to it."""

    pattern_id: str
    # Records below the severity floor: the rate applies to these.
    sampled_per_second: float
    # Records at or above the floor: always kept, but they spend the budget.
    floor_per_second: float
    # Rate fixed before allocation (an anomaly boost or an override), with its reason.
    fixed_rate: float | None = None
    fixed_reason: str = ""
    # Its words say something failed (severity.is_error_like on the template).
    error_like: bool = False


@dataclass(frozen=True, slots=True)
class ErrorLikeFloor:
    """The least an error-like pattern keeps, however loud it is."""

    min_rate: float
    min_examples_per_interval: int


@dataclass(frozen=True, slots=True)
class Allocation:
    rate: float
    reason: str
    explanation: str


def keep_budget(
    total_per_second: float, target_reduction: float, target_per_second: float | None
) -> float:
    """Records/s a service may keep."""
    if target_per_second is not None:
        return target_per_second
    return (1.0 - target_reduction) * total_per_second


def allocate_keeps(volumes: Mapping[str, float], budget: float, floor: float) -> dict[str, float]:
    """Records/s to keep per pattern: min(v, max(floor, s*log1p(v))) summing to `budget`.

    `s` is found by bisection (the sum is monotonic in s). When even the floors exceed the
    budget the floors win: every pattern keeps examples.
    """

    def kept(scale: float) -> dict[str, float]:
        return {
            pid: min(volume, max(floor, scale * math.log1p(volume)))
            for pid, volume in volumes.items()
        }

    if sum(volumes.values()) <= budget:
        return dict(volumes)
    low, high = 0.0, max((v / math.log1p(v) for v in volumes.values() if v > 0), default=0.0)
    for _ in range(_SEARCH_STEPS):
        middle = (low + high) / 2
        if sum(kept(middle).values()) > budget:
            high = middle
        else:
            low = middle
    return kept(low)


def significant(rate: float) -> float:
    """Two significant digits: small drifts in volume do not churn policy versions."""
    if rate >= 1.0 or rate <= 0.0:
        return min(max(rate, 0.0), 1.0)
    return float(f"{rate:.2g}")


def allocate_service(
    loads: list[PatternLoad],
    target_reduction: float,
    target_per_second: float | None,
    min_examples_per_interval: int,
    interval_s: float,
    error_like_floor: ErrorLikeFloor | None = None,
) -> dict[str, Allocation]:
    """Rates for one service's patterns under its budget."""
    # Patterns with a fixed rate (an anomaly boost, an override) sit outside the budget: an
    # incident is kept on top of the target rather than starving every other pattern.
    budgeted = [p for p in loads if p.fixed_rate is None]
    total = sum(p.sampled_per_second + p.floor_per_second for p in budgeted)
    budget = keep_budget(total, target_reduction, target_per_second)
    spent = sum(p.floor_per_second for p in budgeted)
    free = {p.pattern_id: p.sampled_per_second for p in budgeted}
    remaining = max(0.0, budget - spent)
    floor = min_examples_per_interval / interval_s
    keeps = allocate_keeps(free, remaining, floor)
    share = f"service budget {budget:.1f}/s of {total:.1f}/s, {remaining:.1f}/s left for "
    share += f"{len(free)} sampled patterns after the severity floor"
    allocations = {}
    for load in loads:
        pid = load.pattern_id
        if load.fixed_rate is not None:
            allocations[pid] = Allocation(load.fixed_rate, load.fixed_reason, load.fixed_reason)
            continue
        volume = load.sampled_per_second
        if volume * interval_s <= min_examples_per_interval:
            allocations[pid] = Allocation(
                1.0,
                REASON_RARE,
                f"{volume * interval_s:.0f} records per interval, at most the floor of "
                f"{min_examples_per_interval}: kept whole",
            )
            continue
        rate = significant(keeps[pid] / volume) if volume > 0 else 1.0
        allocation = Allocation(
            rate,
            REASON_BUDGET,
            f"{volume:.1f}/s sampled at {rate:g} -> {volume * rate:.1f}/s kept; {share}",
        )
        if load.error_like and error_like_floor is not None:
            allocation = _raise_to_error_like_floor(
                allocation, volume, interval_s, error_like_floor
            )
        allocations[pid] = allocation
    return allocations


def _raise_to_error_like_floor(
    allocation: Allocation, volume: float, interval_s: float, floor: ErrorLikeFloor
) -> Allocation:
    by_examples = floor.min_examples_per_interval / (volume * interval_s)
    floor_rate = significant(min(1.0, max(floor.min_rate, by_examples)))
    if allocation.rate >= floor_rate:
        return allocation
    return Allocation(
        floor_rate,
        REASON_ERROR_LIKE,
        f"error-like template: at least rate {floor.min_rate:g} and "
        f"{floor.min_examples_per_interval} records per interval (budget alone gave "
        f"{allocation.rate:g}); {volume * floor_rate:.1f}/s kept of {volume:.1f}/s",
    )
