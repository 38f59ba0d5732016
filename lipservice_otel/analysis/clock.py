"""The analysis clock: unix seconds that advance with the monotonic clock.

The analysis measures durations (the interval since the last cycle, anomaly cooldowns,
pattern and judgement TTLs, override expiry) between instants it also stores, so a restart
or a standby replica resumes them. Read from the wall clock, an NTP step or a resumed VM
would move every one of them at once: an hour back and each boost lasts an hour longer
and the next interval looks a thousand times louder; an hour forward and every pattern is
forgotten and every judgement asked for again. So the wall clock is read once, at start,
and time then advances as `time.monotonic` does; the next start takes the wall clock again.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class SteadyClock:
    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._offset = wall() - monotonic()

    def __call__(self) -> float:
        return self._monotonic() + self._offset
