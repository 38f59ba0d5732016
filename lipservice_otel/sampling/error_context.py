"""Error context: the sampled-out logs that led up to an error in the same trace.

Records with a trace id that the policy drops are remembered for a short window (bounded in
bytes, and in records per trace: the last ones before an error are the context, and a trace
that logs for minutes must not grow without end). When a record at the severity floor arrives
with a trace id, that trace's remembered records are handed back to be forwarded, and the
trace is marked hot for a while so its later records are kept too. Nothing here adds latency
to kept records: remembering costs one serialization per dropped traced record, recalling
happens only on errors.

The byte bound counts what an entry holds in memory, not only its serialized record: the
tuple, the trace id, the timestamp and the indexes add about ENTRY_OVERHEAD_BYTES each, more
than the record itself for short lines. An entry's bytes are given back when it leaves the
window queue, recalled or not, since until then the queue still holds it.

Remembering runs for most dropped records with a trace id, so a window holds hundreds of
thousands of entries. They are plain tuples of bytes and floats, never objects or lists: the
garbage collector stops tracking such tuples, so a full window costs no collection time, and
building one costs less than any class instance.
"""

from __future__ import annotations

from collections import OrderedDict, deque

# Serialized Resource and InstrumentationScope of the record's request, shared between the
# records of one scope, so forwarding rebuilds the record where it came from.
Origin = tuple[bytes, bytes]
# (trace id, when remembered, origin, serialized LogRecord).
Remembered = tuple[bytes, float, Origin, bytes]
_AT, _RECORD = 1, 3
# Memory of one entry besides its serialized record, measured with tracemalloc (CPython
# 3.11, 16-byte trace ids): ~160 bytes when traces repeat, ~260 when every trace is new.
ENTRY_OVERHEAD_BYTES = 200


class ErrorContext:
    def __init__(
        self,
        window_s: float,
        max_bytes: int,
        hot_ttl_s: float,
        max_hot: int,
        max_records_per_trace: int,
    ) -> None:
        self._window_s = window_s
        self._max_bytes = max_bytes
        self._hot_ttl_s = hot_ttl_s
        self._max_hot = max_hot
        self._max_per_trace = max_records_per_trace
        self._entries: deque[Remembered] = deque()
        # A trace's last entries in the order remembered; an entry in the window queue that
        # its trace no longer lists was recalled or pushed out, and only waits to be discarded.
        self._by_trace: dict[bytes, tuple[Remembered, ...]] = {}
        self._bytes = 0
        self._hot: OrderedDict[bytes, float] = OrderedDict()

    @property
    def bytes_held(self) -> int:
        return self._bytes

    def remember(self, trace_id: bytes, at: float, origin: Origin, record: bytes) -> None:
        entry = (trace_id, at, origin, record)
        self._entries.append(entry)
        same_trace = self._by_trace.get(trace_id)
        if same_trace is None:
            self._by_trace[trace_id] = (entry,)
        elif len(same_trace) < self._max_per_trace:
            self._by_trace[trace_id] = (*same_trace, entry)
        else:
            self._by_trace[trace_id] = (*same_trace[1:], entry)
        self._bytes += len(record) + ENTRY_OVERHEAD_BYTES
        if self._bytes > self._max_bytes or self._entries[0][_AT] < at - self._window_s:
            self._evict(at)

    def _evict(self, now: float) -> None:
        oldest_allowed = now - self._window_s
        entries = self._entries
        by_trace = self._by_trace
        while entries and (entries[0][_AT] < oldest_allowed or self._bytes > self._max_bytes):
            old = entries.popleft()
            self._bytes -= len(old[_RECORD]) + ENTRY_OVERHEAD_BYTES
            trace_id = old[0]
            same_trace = by_trace.get(trace_id)
            if same_trace is None or same_trace[0] is not old:
                continue  # recalled, or pushed out of its trace by later records
            if len(same_trace) == 1:
                del by_trace[trace_id]
            else:
                by_trace[trace_id] = same_trace[1:]

    def recall(self, trace_id: bytes, now: float) -> list[Remembered]:
        """The trace's remembered records (oldest first); the trace becomes hot."""
        self._hot[trace_id] = now + self._hot_ttl_s
        self._hot.move_to_end(trace_id)
        while len(self._hot) > self._max_hot:
            self._hot.popitem(last=False)
        recalled = self._by_trace.pop(trace_id, ())
        self._evict(now)
        return [e for e in recalled if e[_AT] >= now - self._window_s]

    def give_back(self, recalled: list[Remembered]) -> None:
        """Remember again what recall() returned but could not be forwarded. The trace stays
        hot, so nothing newer of it was remembered meanwhile and the order holds."""
        for entry in recalled:
            self.remember(*entry)

    def is_hot(self, trace_id: bytes, now: float) -> bool:
        until = self._hot.get(trace_id)
        if until is None:
            return False
        if until < now:
            del self._hot[trace_id]
            return False
        return True
