"""When the next batch may leave, so that a worker averages its `--rate`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

# A batch never holds more than this much of a worker's rate, so a low rate still sends
# steadily (rate 50 with --batch-size 100 sends 5 records every 100 ms, not 100 every 2 s).
MAX_BATCH_SPAN_S = 0.1
# A worker that fell behind (slow receiver) may catch up on at most this much lost time,
# rather than bursting for as long as it was late.
MAX_CATCH_UP_S = 1.0


def paced_batch_size(batch_size: int, rate: float) -> int:
    if rate <= 0:
        return batch_size
    return max(1, min(batch_size, math.ceil(rate * MAX_BATCH_SPAN_S)))


class Pacer:
    """Spaces batches `records / rate` seconds apart; a rate of 0 never waits."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._next = clock()

    def wait(self, records: int) -> None:
        """Block until `records` more records may be sent."""
        if self._rate <= 0:
            return
        now = self._clock()
        self._next = max(self._next, now - MAX_CATCH_UP_S)
        if self._next > now:
            self._sleep(self._next - now)
        self._next += records / self._rate
