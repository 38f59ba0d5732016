"""The time series the live page draws, bounded whatever the traffic.

Fed by the analysis loop's observer hook: every receiver report as it arrives (`reported`)
and every cycle's anomalies (`cycled`). It keeps

- records received and kept per bucket of `bucket_s` over the last `history_s` (the kept vs
  dropped chart);
- records received per signature pattern per bucket, for the `sparkline_patterns` loudest
  patterns over that window only: when a bucket closes, the patterns with most records in the
  window keep their series and the others lose theirs (a pattern that climbs into the top
  has its sparkline from then on). Within one bucket at most `OPEN_PATTERNS_FACTOR` x that
  many patterns are counted, first come, so a flood of new templates costs bounded memory;
- the last `max_anomalies` anomalies, with the time they were found.

Times are unix seconds; a bucket is named by its index, `floor(time / bucket_s)`.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lipservice_otel.analysis.anomaly import Anomaly
from lipservice_otel.analysis.loop import ReportedCounts

# Patterns counted within the open bucket, as a multiple of sparkline_patterns: room for the
# newcomers that may outrank the tracked ones when the bucket closes.
OPEN_PATTERNS_FACTOR = 10


@dataclass(frozen=True, slots=True)
class Point:
    start: float  # unix seconds
    received: int
    kept: int

    @property
    def dropped(self) -> int:
        return self.received - self.kept


@dataclass(frozen=True, slots=True)
class SeenAnomaly:
    at: float  # unix seconds, when the cycle that found it ended
    anomaly: Anomaly


class History:
    def __init__(
        self,
        bucket_s: float,
        history_s: float,
        sparkline_patterns: int,
        max_anomalies: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bucket_s = bucket_s
        self.buckets = max(1, math.ceil(history_s / bucket_s))
        self._top = sparkline_patterns
        self._clock = clock
        self._open_index = self._index(clock())
        self._open_totals = [0, 0]
        self._open_patterns: dict[str, int] = {}
        self._totals: deque[tuple[int, int, int]] = deque()  # (index, received, kept)
        self._series: dict[str, dict[int, int]] = {}  # signature id -> index -> received
        self._anomalies: deque[SeenAnomaly] = deque(maxlen=max_anomalies)
        self.last_cycle_at: float | None = None

    # ---- the loop's observer hook ----

    def reported(self, report: ReportedCounts) -> None:
        self._advance(self._index(self._clock()))
        open_patterns = self._open_patterns
        room = self._top * OPEN_PATTERNS_FACTOR
        for counts in report.counts:
            self._open_totals[0] += counts.received
            self._open_totals[1] += counts.kept
            pid = counts.pattern_id
            if pid in open_patterns:
                open_patterns[pid] += counts.received
            elif len(open_patterns) < room:
                open_patterns[pid] = counts.received

    def cycled(self, anomalies: list[Anomaly]) -> None:
        now = self._clock()
        self.last_cycle_at = now
        self._anomalies.extendleft(SeenAnomaly(now, anomaly) for anomaly in anomalies)

    # ---- what the page reads ----

    def series(self) -> list[Point]:
        """Received and kept per bucket over the window, oldest first, empty buckets as 0."""
        self._advance(self._index(self._clock()))
        closed = {index: (received, kept) for index, received, kept in self._totals}
        closed[self._open_index] = (self._open_totals[0], self._open_totals[1])
        return [
            Point(index * self.bucket_s, *closed.get(index, (0, 0))) for index in self._window()
        ]

    def sparkline(self, signature_ids: Iterable[str]) -> list[int] | None:
        """Records per bucket over the window of these signature patterns together (a merged
        pattern's members), oldest first; None when none of them has a series."""
        self._advance(self._index(self._clock()))
        ids = tuple(signature_ids)
        tracked = [self._series[s] for s in ids if s in self._series]
        if not tracked and not any(s in self._open_patterns for s in ids):
            return None
        window = self._window()
        line = [sum(series.get(index, 0) for series in tracked) for index in window]
        line[-1] += sum(self._open_patterns.get(s, 0) for s in ids)
        return line

    def anomalies(self) -> list[SeenAnomaly]:
        """Newest first."""
        return list(self._anomalies)

    def tracked_patterns(self) -> int:
        return len(self._series)

    # ---- buckets ----

    def _index(self, now: float) -> int:
        return math.floor(now / self.bucket_s)

    def _window(self) -> range:
        return range(self._open_index - self.buckets + 1, self._open_index + 1)

    def _advance(self, index: int) -> None:
        """Close the open bucket once time has moved past it."""
        if index <= self._open_index:
            return
        closing = self._open_index
        self._totals.append((closing, *self._open_totals))
        self._open_index = index
        self._open_totals = [0, 0]
        oldest = index - self.buckets + 1
        while self._totals and self._totals[0][0] < oldest:
            self._totals.popleft()
        self._keep_loudest(closing, self._open_patterns, oldest)
        self._open_patterns = {}

    def _keep_loudest(self, closing: int, closed: dict[str, int], oldest: int) -> None:
        volumes: dict[str, int] = {}
        for pid, series in self._series.items():
            for index in [i for i in series if i < oldest]:
                del series[index]
            volumes[pid] = sum(series.values())
        if closing < oldest:  # time jumped past the whole window: nothing to keep of it
            closed = {}
        for pid, count in closed.items():
            volumes[pid] = volumes.get(pid, 0) + count
        loudest = heapq.nlargest(self._top, volumes, key=volumes.__getitem__)
        series = {pid: self._series.get(pid, {}) for pid in loudest if volumes[pid] > 0}
        for pid, count in closed.items():
            if pid in series and count:
                series[pid][closing] = count
        self._series = series
