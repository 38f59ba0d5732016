"""Budgeted rules: share a service's keep budget across its patterns.

In the spirit of Refinery's EMA dynamic sampler and Cribl's log mode: every pattern keeps a
floor of examples per interval, and beyond that patterns are weighted by the logarithm of
their volume, so a pattern 10,000x louder keeps only ~10x more. Heavy hitters pay for the
savings; quiet patterns stay whole.

The LLM advisor's judgements (llm/judgement.py) enter as weights and floors inside the same
budget: a critical pattern is kept whole, a high one keeps at least `HIGH_MIN_RATE`, noise
weighs less and keeps fewer examples. The budget is then re-balanced, so the service's target
holds; when the model's floors alone would exceed it they shrink to fit. Overrides, anomaly
boosts, the severity floor and the error-like floor are never weakened by a judgement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from lipservice_otel.analysis.llm.judgement import Judgement
from lipservice_otel.policy.reasons import REASON_BUDGET, REASON_ERROR_LIKE, REASON_LLM, REASON_RARE

# How the model's importance scales a pattern's share of the budget (the log weight).
IMPORTANCE_WEIGHTS = {"critical": 1.0, "high": 4.0, "normal": 1.0, "low": 0.5, "noise": 0.1}
# The least rate of a pattern judged high, unless the model named a higher min_rate.
HIGH_MIN_RATE = 0.1
# Noise still keeps an example per interval: every pattern stays visible in the backend.
NOISE_MIN_EXAMPLES_PER_INTERVAL = 1

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
    # The model's current judgement of it; ignored when the rate is fixed.
    advice: Judgement | None = None
    # The least rate it gets: a pattern getting louder keeps the rate it had, so the log
    # weights never hand an incident less detail (plan.py; 0: none).
    min_rate: float = 0.0


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


def allocate_keeps(
    volumes: Mapping[str, float],
    budget: float,
    floor: float | Mapping[str, float],
    weights: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Records/s to keep per pattern: min(v, max(floor, s*w*log1p(v))) summing to `budget`.

    `floor` and the weight `w` (default 1) may differ per pattern. `s` is found by bisection
    (the sum is monotonic in s). When even the floors exceed the budget the floors win: every
    pattern keeps examples.
    """
    if sum(volumes.values()) <= budget:
        return dict(volumes)
    # Vectors over the patterns: the bisection evaluates the sum some sixty times, and a
    # service can hold tens of thousands of patterns.
    pids = list(volumes)
    volume = np.fromiter(volumes.values(), dtype=np.float64, count=len(pids))
    if isinstance(floor, Mapping):
        floors = np.fromiter((floor[pid] for pid in pids), dtype=np.float64, count=len(pids))
    else:
        floors = np.full(len(pids), float(floor))
    weighted_log = np.log1p(volume)
    if weights:
        weighted_log *= np.fromiter(
            (weights.get(pid, 1.0) for pid in pids), dtype=np.float64, count=len(pids)
        )

    def kept(scale: float) -> np.ndarray:
        return np.minimum(volume, np.maximum(floors, scale * weighted_log))

    positive = volume > 0
    low, high = 0.0, float(np.max(volume[positive] / weighted_log[positive], initial=0.0))
    for _ in range(_SEARCH_STEPS):
        middle = (low + high) / 2
        if kept(middle).sum() > budget:
            high = middle
        else:
            low = middle
    return dict(zip(pids, kept(low).tolist(), strict=True))


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
    floors, fitted = _floors(budgeted, remaining, min_examples_per_interval, interval_s)
    weights = {p.pattern_id: IMPORTANCE_WEIGHTS[p.advice.importance] for p in budgeted if p.advice}
    keeps = allocate_keeps(free, remaining, floors, weights)
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
            explanation = (
                f"{volume * interval_s:.0f} records per interval, at most the floor of "
                f"{min_examples_per_interval}: kept whole"
            )
            if load.advice is not None:
                explanation = f"{_model_said(load.advice)}; {explanation}"
            allocations[pid] = Allocation(1.0, REASON_RARE, explanation)
            continue
        rate = significant(keeps[pid] / volume) if volume > 0 else 1.0
        allocation = Allocation(
            rate,
            REASON_BUDGET,
            f"{volume:.1f}/s sampled at {rate:g} -> {volume * rate:.1f}/s kept; {share}",
        )
        if load.advice is not None:
            allocation = _advised(allocation, load.advice, fitted)
        if load.error_like and error_like_floor is not None:
            allocation = _raise_to_error_like_floor(
                allocation, volume, interval_s, error_like_floor
            )
        if allocation.rate < load.min_rate:
            allocation = Allocation(
                load.min_rate,
                allocation.reason,
                f"getting louder: held at its rate {load.min_rate:g} (the budget alone gave "
                f"{allocation.rate:g}); {allocation.explanation}",
            )
        allocations[pid] = allocation
    return allocations


def model_min_rate(advice: Judgement) -> float:
    """The least rate a judgement asks for (before it is fitted into the budget)."""
    if advice.importance == "critical":
        return 1.0
    if advice.importance == "high":
        return max(HIGH_MIN_RATE, advice.min_rate or 0.0)
    return advice.min_rate or 0.0


def _floors(
    loads: list[PatternLoad], remaining: float, min_examples_per_interval: int, interval_s: float
) -> tuple[dict[str, float], bool]:
    """Per-pattern least keeps (records/s), and whether the model's floors had to shrink.

    Every pattern keeps its examples floor (noise a smaller one); the model's floors come on
    top, scaled down together when they would not fit in what is left of the budget.
    """
    examples = min_examples_per_interval / interval_s
    noise = min(min_examples_per_interval, NOISE_MIN_EXAMPLES_PER_INTERVAL) / interval_s
    base, extra = {}, {}
    for load in loads:
        volume = load.sampled_per_second
        noisy = load.advice is not None and load.advice.importance == "noise"
        base[load.pattern_id] = min(volume, noise if noisy else examples)
        wanted = model_min_rate(load.advice) * volume if load.advice else 0.0
        extra[load.pattern_id] = max(0.0, min(volume, wanted) - base[load.pattern_id])
    room = remaining - sum(base.values())
    wanted_total = sum(extra.values())
    scale = 1.0 if wanted_total <= max(room, 0.0) else max(room, 0.0) / wanted_total
    return {pid: base[pid] + scale * extra[pid] for pid in base}, scale < 1.0


def _model_said(advice: Judgement) -> str:
    said = f"model {advice.model} judged {advice.importance}"
    if advice.min_rate is not None:
        said += f" (min_rate {advice.min_rate:g})"
    return f"{said}: {advice.reason}"


def _advised(allocation: Allocation, advice: Judgement, fitted: bool) -> Allocation:
    said = _model_said(advice)
    if fitted and model_min_rate(advice) > allocation.rate:
        said += "; its floor was shrunk to fit the service budget"
    if advice.importance == "normal" and advice.min_rate is None:
        # Nothing changed by it: the budget decided, the model's view is shown for context.
        return Allocation(allocation.rate, allocation.reason, f"{said}; {allocation.explanation}")
    return Allocation(allocation.rate, REASON_LLM, f"{said}; {allocation.explanation}")


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
