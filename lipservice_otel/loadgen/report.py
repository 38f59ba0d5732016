"""What a run did: records sent, acknowledged and rejected, the achieved rate, request latency.

Each worker counts into its own `WorkerStats` (no lock on the hot path); the report merges
them at the end, and the progress line reads them while they run (a slightly stale read is
fine for a display).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field

from lipservice_otel.loadgen.transport import SendResult


@dataclass(slots=True)
class WorkerStats:
    requests: int = 0
    sent: int = 0
    rejected: int = 0
    # Failed requests by error ("UNAVAILABLE", "HTTP 429", ...).
    errors: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)

    def add(self, records: int, result: SendResult, latency_s: float) -> None:
        self.requests += 1
        self.sent += records
        self.rejected += result.rejected
        if result.error is not None:
            self.errors[result.error] += 1
        self.latencies_s.append(latency_s)


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(len(ordered) * q / 100))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Report:
    endpoint: str
    transport: str
    profile: str
    workers: int
    elapsed_s: float
    requests: int
    sent: int
    acknowledged: int
    rejected: int
    # Failed requests by error; their records are counted in `rejected`.
    errors: dict[str, int]
    rate_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    # The incident profile's scripted events, as shares of the run.
    events: list[dict[str, object]]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def summary(self) -> str:
        lines = [
            f"otel-gen: {self.sent} records in {self.requests} requests to {self.endpoint} "
            f"({self.transport}) over {self.elapsed_s:.2f}s: {self.rate_per_s:,.0f} records/s",
            f"  acknowledged {self.acknowledged}, rejected {self.rejected}",
            f"  request latency p50 {self.latency_p50_ms:.2f} ms, p99 {self.latency_p99_ms:.2f} ms",
        ]
        if self.errors:
            failed = ", ".join(f"{error} x{n}" for error, n in sorted(self.errors.items()))
            lines.append(f"  failed requests: {failed}")
        for event in self.events:
            lines.append(
                f"  scripted {event['name']}: {event['start']:.0%}-{event['end']:.0%} of the run, "
                f"{event['share']:.0%} of records: {event['body']!r}"
            )
        return "\n".join(lines)


def build_report(
    stats: list[WorkerStats],
    elapsed_s: float,
    endpoint: str,
    transport: str,
    profile: str,
    events: list[dict[str, object]],
) -> Report:
    latencies = sorted(latency for worker in stats for latency in worker.latencies_s)
    errors: Counter[str] = Counter()
    for worker in stats:
        errors.update(worker.errors)
    sent = sum(worker.sent for worker in stats)
    rejected = sum(worker.rejected for worker in stats)
    return Report(
        endpoint=endpoint,
        transport=transport,
        profile=profile,
        workers=len(stats),
        elapsed_s=round(elapsed_s, 6),
        requests=sum(worker.requests for worker in stats),
        sent=sent,
        acknowledged=sent - rejected,
        rejected=rejected,
        errors=dict(errors),
        rate_per_s=sent / elapsed_s if elapsed_s > 0 else 0.0,
        latency_p50_ms=percentile(latencies, 50) * 1000,
        latency_p99_ms=percentile(latencies, 99) * 1000,
        events=events,
    )


def progress_line(stats: list[WorkerStats], elapsed_s: float) -> str:
    sent = sum(worker.sent for worker in stats)
    rejected = sum(worker.rejected for worker in stats)
    rate = sent / elapsed_s if elapsed_s > 0 else 0.0
    return (
        f"otel-gen: {elapsed_s:7.1f}s  sent {sent}  acknowledged {sent - rejected}  "
        f"rejected {rejected}  {rate:,.0f}/s"
    )
