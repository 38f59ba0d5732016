"""The page's history: exact totals per bucket, bounded sparklines, bounded anomalies."""

from __future__ import annotations

import asyncio

from lipservice_otel.analysis.anomaly import Anomaly
from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.loop import AnalysisLoop
from lipservice_otel.policy.model import Policy
from lipservice_otel.sampling.aggregates import IntervalReport, PatternCounts, PatternInfo
from lipservice_otel.store.memory import MemoryStore
from lipservice_otel.ui.history import OPEN_PATTERNS_FACTOR, History


class Clock:
    def __init__(self) -> None:
        self.now = 6000.0  # a bucket boundary for 10 s buckets

    def __call__(self) -> float:
        return self.now


def report(*counts: tuple[str, int, int]) -> IntervalReport:
    return IntervalReport(
        counts=[
            PatternCounts("svc", pid, "info", received, kept) for pid, received, kept in counts
        ],
        patterns={},
        overflow_records=0,
    )


def history(clock: Clock, top: int = 2, anomalies: int = 3) -> History:
    return History(
        bucket_s=10, history_s=60, sparkline_patterns=top, max_anomalies=anomalies, clock=clock
    )


def test_totals_per_bucket_are_exact_and_zero_filled():
    clock = Clock()
    h = history(clock)
    h.reported(report(("a", 100, 10), ("b", 50, 50)))
    clock.now += 5
    h.reported(report(("a", 20, 2)))
    clock.now += 20  # two buckets later
    h.reported(report(("b", 7, 1)))
    points = h.series()
    assert len(points) == 6
    assert [(p.received, p.kept, p.dropped) for p in points[-3:]] == [
        (170, 62, 108),
        (0, 0, 0),
        (7, 1, 6),
    ]
    assert [p.start for p in points] == [5970.0 + 10 * n for n in range(6)]


def test_buckets_older_than_the_window_are_forgotten():
    clock = Clock()
    h = history(clock)
    h.reported(report(("a", 100, 10)))
    clock.now += 60
    assert sum(p.received for p in h.series()) == 0
    assert h.sparkline(["a"]) is None


def test_only_the_loudest_patterns_keep_a_sparkline():
    clock = Clock()
    h = history(clock, top=2)
    h.reported(report(("loud", 300, 3), ("middle", 200, 2), ("quiet", 100, 1)))
    clock.now += 10
    h.reported(report(("quiet", 5, 5)))
    assert h.tracked_patterns() == 2
    assert h.sparkline(["loud"])[-2:] == [300, 0]
    assert h.sparkline(["middle"])[-2:] == [200, 0]
    # Counted in its open bucket, but its closed bucket was not kept.
    assert h.sparkline(["quiet"])[-2:] == [0, 5]
    assert h.sparkline(["never-seen"]) is None


def test_a_merged_pattern_sums_its_members():
    clock = Clock()
    h = history(clock, top=5)
    h.reported(report(("sig1", 30, 3), ("sig2", 12, 1)))
    clock.now += 10
    h.reported(report(("sig1", 1, 1)))
    assert h.sparkline(iter(["sig1", "sig2"]))[-2:] == [42, 1]


def test_a_flood_of_new_patterns_is_counted_in_totals_but_bounded_per_pattern():
    clock = Clock()
    h = history(clock, top=3)
    flood = [(f"p{n}", 1, 0) for n in range(10_000)]
    h.reported(report(*flood))
    assert len(h._open_patterns) == 3 * OPEN_PATTERNS_FACTOR
    clock.now += 10
    assert h.series()[-2].received == 10_000
    assert h.tracked_patterns() == 3


def test_anomalies_are_kept_newest_first_and_bounded():
    clock = Clock()
    h = history(clock, anomalies=3)
    assert h.last_cycle_at is None
    for n in range(5):
        clock.now += 1
        h.cycled([Anomaly("spike", "svc", f"p{n}", "warning", 0.9, "x")])
    h.cycled([])
    seen = h.anomalies()
    assert [s.anomaly.pattern_id for s in seen] == ["p4", "p3", "p2"]
    assert [s.at for s in seen] == [6005.0, 6004.0, 6003.0]
    assert h.last_cycle_at == 6005.0


def test_the_analysis_loop_feeds_it_through_its_observer_hook():
    async def run() -> History:
        clock = Clock()
        h = history(clock, top=5)
        loop = AnalysisLoop(AnalysisConfig(), MemoryStore(None, history_limit=5), Policy(version=1))
        loop.observe(h)
        for pid in ("warm", "newcomer"):
            loop.ingest(
                IntervalReport(
                    counts=[PatternCounts("svc", pid, "info", 40, 8)],
                    patterns={pid: PatternInfo("svc", f"{pid} <*>", [f"{pid} 1"])},
                    overflow_records=0,
                )
            )
            await loop.cycle()  # the second cycle finds a pattern it has not seen
        return h

    h = asyncio.run(run())
    assert (h.series()[-1].received, h.series()[-1].kept) == (80, 16)
    assert h.sparkline(["newcomer"])[-1] == 40
    assert h.last_cycle_at == 6000.0
    assert [(s.anomaly.kind, s.anomaly.pattern_id) for s in h.anomalies()] == [
        ("new_pattern", "newcomer")
    ]
