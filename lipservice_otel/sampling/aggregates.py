"""Per-pattern counts of every record, kept and dropped, for one reporting interval.

The analysis loop learns from these, so they must cover dropped records too. Memory is bounded
by `max_keys`: once that many (tenant, service, pattern, severity) keys exist in an interval,
further new keys are counted together under the `other` pattern and in `overflow_records`, so
a flood of distinct templates costs a counter, not memory. The tenant is "" unless
`analysis.tenant_key` is set (see tenant.py).

Bytes are each counted LogRecord's encoded size as received, before the sampler annotates it
or clears an id: the compiled sampler takes the length of the record's bytes on the wire, the
Python one `record.ByteSize()` of the parsed record, which is the same number for the
canonical encoding protobuf writes (a sender's non-canonical encoding, e.g. a field sent twice,
counts the size it re-encodes to there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

OTHER_PATTERN_ID = "other"
MAX_EXAMPLES_PER_PATTERN = 3
MAX_EXAMPLE_CHARS = 512


@dataclass(slots=True)
class PatternCounts:
    service: str
    pattern_id: str
    severity_bucket: str
    received: int = 0
    # What enforce mode keeps: in shadow mode (everything forwarded) what it would keep.
    kept: int = 0
    # Encoded LogRecord bytes of those records, as received (see the module docstring).
    received_bytes: int = 0
    kept_bytes: int = 0
    tenant: str = ""


@dataclass(slots=True)
class PatternInfo:
    service: str
    template: str
    examples: list[str] = field(default_factory=list)
    tenant: str = ""


@dataclass(slots=True)
class IntervalReport:
    """What one interval saw; handed to the analysis loop and then forgotten."""

    counts: list[PatternCounts]
    patterns: dict[str, PatternInfo]
    overflow_records: int


class Aggregates:
    def __init__(self, max_keys: int) -> None:
        self._max_keys = max_keys
        self._counts: dict[tuple[str, str, str, str], PatternCounts] = {}
        self._patterns: dict[str, PatternInfo] = {}
        self._overflow_records = 0
        # Bumped by drain(): counters handed out before belong to a finished interval.
        self.interval = 0

    def counter(
        self, service: str, pattern_id: str, bucket: str, tenant: str = ""
    ) -> PatternCounts:
        """The counter to bump for a record; the caller increments it (cheaper than a call)."""
        key = (tenant, service, pattern_id, bucket)
        counts = self._counts.get(key)
        if counts is not None:
            return counts
        if len(self._counts) >= self._max_keys:
            return self._overflow(tenant, service, bucket)
        counts = self._counts[key] = PatternCounts(service, pattern_id, bucket, tenant=tenant)
        return counts

    def has_counter(self, service: str, pattern_id: str, bucket: str, tenant: str = "") -> bool:
        """Whether counter() would give this key its own counter (not overflow), asking only."""
        key = (tenant, service, pattern_id, bucket)
        return key in self._counts or len(self._counts) < self._max_keys

    def note_pattern(
        self, pattern_id: str, service: str, template: str, example: str, tenant: str = ""
    ) -> None:
        """Remember a pattern's template and a few example bodies (bounded)."""
        info = self._patterns.get(pattern_id)
        if info is None:
            if len(self._patterns) >= self._max_keys:
                return
            info = self._patterns[pattern_id] = PatternInfo(service, template, tenant=tenant)
        if len(info.examples) < MAX_EXAMPLES_PER_PATTERN:
            info.examples.append(example[:MAX_EXAMPLE_CHARS])

    def _overflow(self, tenant: str, service: str, bucket: str) -> PatternCounts:
        self._overflow_records += 1
        key = (tenant, service, OTHER_PATTERN_ID, bucket)
        counts = self._counts.get(key)
        if counts is None:
            # The overflow keys themselves are few (tenants x services x buckets) but still
            # bounded.
            counts = PatternCounts(service, OTHER_PATTERN_ID, bucket, tenant=tenant)
            if len(self._counts) < 2 * self._max_keys:
                self._counts[key] = counts
        return counts

    def distinct_keys(self) -> int:
        return len(self._counts)

    def drain(self) -> IntervalReport:
        """Hand over this interval's counts and start a new interval."""
        report = IntervalReport(
            counts=list(self._counts.values()),
            patterns=self._patterns,
            overflow_records=self._overflow_records,
        )
        self._counts = {}
        self._patterns = {}
        self._overflow_records = 0
        self.interval += 1
        return report
