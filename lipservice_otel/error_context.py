"""Error context: the sampled-out logs that led up to an error in the same trace.

Records with a trace id that the policy drops are remembered for a short window (bounded in
bytes). When a record at the severity floor arrives with a trace id, that trace's remembered
records are handed back to be forwarded, and the trace is marked hot for a while so its later
records are kept too. Nothing here adds latency to kept records: remembering costs one
serialization per dropped traced record, recalling happens only on errors.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass


@dataclass(slots=True)
class Remembered:
    trace_id: bytes
    at: float
    # Serialized Resource and InstrumentationScope of the record's request, shared between the
    # records of one scope, so forwarding rebuilds the record where it came from.
    resource: bytes
    scope: bytes
    record: bytes
    # Set once recalled: the entry then only waits in the window queue to be discarded.
    taken: bool = False


class ErrorContext:
    def __init__(self, window_s: float, max_bytes: int, hot_ttl_s: float, max_hot: int) -> None:
        self._window_s = window_s
        self._max_bytes = max_bytes
        self._hot_ttl_s = hot_ttl_s
        self._max_hot = max_hot
        self._entries: deque[Remembered] = deque()
        self._by_trace: dict[bytes, list[Remembered]] = {}
        self._bytes = 0
        self._hot: OrderedDict[bytes, float] = OrderedDict()

    @property
    def bytes_held(self) -> int:
        return self._bytes

    def remember(self, entry: Remembered) -> None:
        self._entries.append(entry)
        self._by_trace.setdefault(entry.trace_id, []).append(entry)
        self._bytes += len(entry.record)
        self._evict(entry.at)

    def _evict(self, now: float) -> None:
        oldest_allowed = now - self._window_s
        entries = self._entries
        while entries and (entries[0].at < oldest_allowed or self._bytes > self._max_bytes):
            old = entries.popleft()
            if old.taken:
                continue
            self._bytes -= len(old.record)
            same_trace = self._by_trace[old.trace_id]
            same_trace.remove(old)
            if not same_trace:
                del self._by_trace[old.trace_id]

    def recall(self, trace_id: bytes, now: float) -> list[Remembered]:
        """The trace's remembered records (oldest first); the trace becomes hot."""
        self._hot[trace_id] = now + self._hot_ttl_s
        self._hot.move_to_end(trace_id)
        while len(self._hot) > self._max_hot:
            self._hot.popitem(last=False)
        recalled = self._by_trace.pop(trace_id, [])
        fresh = [e for e in recalled if e.at >= now - self._window_s]
        for entry in recalled:
            self._bytes -= len(entry.record)
            entry.taken = True
        self._evict(now)
        return fresh

    def is_hot(self, trace_id: bytes, now: float) -> bool:
        until = self._hot.get(trace_id)
        if until is None:
            return False
        if until < now:
            del self._hot[trace_id]
            return False
        return True
