"""Rate anomalies per pattern: moving baselines, spikes, error surges.

Pure functions over plain numbers; the loop decides what to do with an anomaly (boost the
pattern to rate 1.0 for a cooldown). New patterns are recognised by the loop itself (a
pattern id it has no state for, once it has warmed up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class Baseline:
    """Exponentially weighted mean and variance of a per-interval value."""

    mean: float = 0.0
    variance: float = 0.0
    samples: int = 0

    def update(self, value: float, alpha: float) -> None:
        if self.samples == 0:
            self.mean, self.variance = value, 0.0
        else:
            # West's incremental EWMA/EWMV: one pass, no history kept.
            diff = value - self.mean
            increment = alpha * diff
            self.mean += increment
            self.variance = (1 - alpha) * (self.variance + diff * increment)
        self.samples += 1

    @property
    def stddev(self) -> float:
        return math.sqrt(self.variance)


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: str
    service: str
    pattern_id: str
    severity: str  # warning | critical
    confidence: float  # 0-1
    detail: str
    # The one template of a merged pattern (`pattern_id`) the anomaly is about; empty when it
    # is about the whole pattern.
    signature_id: str = ""


def detect_spike(
    baseline: Baseline,
    rate: float,
    count: int,
    interval_s: float,
    ratio: float,
    z: float,
    min_records: int,
) -> tuple[str, float, str] | None:
    """(severity, confidence, detail) when `rate` spikes above the baseline, else None.

    The deviation is measured against the larger of the baseline's own spread and the Poisson
    noise of counting `baseline.mean * interval_s` records, so a quiet pattern going from 1 to
    4 records is not a spike while one going from 100/s to 400/s is.
    """
    if baseline.samples < 2 or count < min_records:
        return None
    mean = baseline.mean
    poisson = math.sqrt(max(mean, 1.0 / interval_s) / interval_s)
    spread = max(baseline.stddev, poisson)
    score = (rate - mean) / spread
    if rate < ratio * mean or score < z:
        return None
    factor = rate / mean if mean > 0 else math.inf
    severity = "critical" if factor >= 3 * ratio else "warning"
    confidence = min(1.0, score / (2 * z))
    return severity, confidence, f"{rate:.1f}/s vs baseline {mean:.1f}/s (x{factor:.1f})"


def detect_error_surge(
    baseline: Baseline, share: float, errors: int, min_increase: float, min_errors: int
) -> tuple[str, float, str] | None:
    """(severity, confidence, detail) when a service's ERROR+ share surges, else None."""
    if baseline.samples < 2 or errors < min_errors:
        return None
    increase = share - baseline.mean
    if increase < min_increase or share < 2 * baseline.mean:
        return None
    severity = "critical" if increase >= 4 * min_increase else "warning"
    confidence = min(1.0, increase / (4 * min_increase))
    return severity, confidence, f"error share {share:.1%} vs baseline {baseline.mean:.1%}"
