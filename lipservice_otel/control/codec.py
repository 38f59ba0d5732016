"""Conversions between our values and the control-plane protobuf messages (lipservice.v1)."""

from __future__ import annotations

from collections.abc import Container

from lipservice_otel._proto.lipservice.v1 import control_pb2
from lipservice_otel.analysis.shards import split_by_shard
from lipservice_otel.control.config import ReportLimitsConfig
from lipservice_otel.policy.model import SEVERITY_LEVELS, UNSPECIFIED_BUCKET
from lipservice_otel.sampling.aggregates import IntervalReport, PatternCounts, PatternInfo


def report_to_proto(
    report: IntervalReport,
    receiver_id: str,
    policy_version: int,
    interval_end_unix_nano: int = 0,
    omit_samples: Container[str] = frozenset(),
) -> control_pb2.AggregateReport:
    """The report as sent; the patterns in `omit_samples` go as counts only (no template and
    examples: the analysis has them already)."""
    message = control_pb2.AggregateReport(
        receiver_id=receiver_id,
        overflow_records=report.overflow_records,
        policy_version=policy_version,
        interval_end_unix_nano=interval_end_unix_nano,
    )
    message.counts.extend(
        control_pb2.PatternCount(
            service=c.service,
            tenant=c.tenant,
            pattern_id=c.pattern_id,
            severity=c.severity_bucket,
            received=c.received,
            kept=c.kept,
            received_bytes=c.received_bytes,
            kept_bytes=c.kept_bytes,
        )
        for c in report.counts
    )
    message.patterns.extend(
        control_pb2.PatternSample(
            pattern_id=pid,
            service=info.service,
            template=info.template,
            examples=info.examples,
            tenant=info.tenant,
        )
        for pid, info in report.patterns.items()
        if pid not in omit_samples
    )
    return message


def split_report_message(
    message: control_pb2.AggregateReport, shards: int
) -> dict[int, control_pb2.AggregateReport]:
    """One report per shard it touches (analysis/shards.py: a pattern stays whole), split as
    messages: the counts and samples are copied as they came, never converted. Overflow
    records go with shard 0; the interval and policy version go with every part."""
    counts, samples = split_by_shard(message.counts, message.patterns, shards)
    touched = set(counts) | set(samples) | ({0} if message.overflow_records else set())
    return {
        shard: control_pb2.AggregateReport(
            receiver_id=message.receiver_id,
            interval_start_unix_nano=message.interval_start_unix_nano,
            interval_end_unix_nano=message.interval_end_unix_nano,
            counts=counts.get(shard, ()),
            patterns=samples.get(shard, ()),
            overflow_records=message.overflow_records if shard == 0 else 0,
            policy_version=message.policy_version,
        )
        for shard in sorted(touched)
    }


def report_from_proto(message: control_pb2.AggregateReport) -> IntervalReport:
    return IntervalReport(
        counts=[
            PatternCounts(
                c.service,
                c.pattern_id,
                c.severity,
                c.received,
                c.kept,
                received_bytes=c.received_bytes,
                kept_bytes=c.kept_bytes,
                tenant=c.tenant,
            )
            for c in message.counts
        ],
        patterns={
            p.pattern_id: PatternInfo(p.service, p.template, list(p.examples), tenant=p.tenant)
            for p in message.patterns
        },
        overflow_records=message.overflow_records,
    )


# Counts travel as uint64, so a negative count sent by a careless client arrives wrapped
# around near 2**64 and NaN or infinity cannot be sent at all; the analysis computes in
# doubles, which hold integers exactly only up to 2**53. Above it a count is refused.
MAX_COUNT = 2**53
SEVERITY_BUCKETS = frozenset((*SEVERITY_LEVELS, UNSPECIFIED_BUCKET))


class InvalidReport(ValueError):
    """A Sync report the analysis must not learn from; `reason` labels the refusal metric."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_report(
    message: control_pb2.AggregateReport, limits: ReportLimitsConfig, now_unix_nano: int
) -> None:
    """Refuse a report that is larger than `limits` allow or claims what cannot be true."""

    def bounded(condition: bool, what: str) -> None:
        if not condition:
            raise InvalidReport("limits", what)

    def valid(condition: bool, what: str) -> None:
        if not condition:
            raise InvalidReport("invalid", what)

    name_chars = limits.max_name_chars
    bounded(
        len(message.receiver_id) <= name_chars, f"receiver_id is longer than {name_chars} chars"
    )
    bounded(
        len(message.counts) <= limits.max_counts_per_report,
        f"{len(message.counts)} counts, more than {limits.max_counts_per_report}",
    )
    bounded(
        len(message.patterns) <= limits.max_patterns_per_report,
        f"{len(message.patterns)} patterns, more than {limits.max_patterns_per_report}",
    )
    valid(message.overflow_records <= MAX_COUNT, "overflow_records is out of range")
    start, end = message.interval_start_unix_nano, message.interval_end_unix_nano
    valid(start >= 0 and end >= 0, "interval times must not be negative")
    valid(not (start and end) or start <= end, "interval ends before it starts")
    skew = int(limits.max_clock_skew_s * 1e9)
    valid(max(start, end) <= now_unix_nano + skew, "interval is in the future")
    for n, count in enumerate(message.counts):
        bounded(
            max(len(count.service), len(count.pattern_id), len(count.tenant)) <= name_chars,
            f"counts[{n}]: service, pattern_id or tenant longer than {name_chars} chars",
        )
        valid(count.severity in SEVERITY_BUCKETS, f"counts[{n}]: unknown severity bucket")
        valid(count.received <= MAX_COUNT, f"counts[{n}]: received is out of range")
        valid(count.kept <= count.received, f"counts[{n}]: kept > received")
        valid(count.received_bytes <= MAX_COUNT, f"counts[{n}]: received_bytes is out of range")
        valid(count.kept_bytes <= count.received_bytes, f"counts[{n}]: kept_bytes > received_bytes")
    for n, pattern in enumerate(message.patterns):
        bounded(
            max(len(pattern.service), len(pattern.pattern_id), len(pattern.tenant)) <= name_chars,
            f"patterns[{n}]: service, pattern_id or tenant longer than {name_chars} chars",
        )
        bounded(
            len(pattern.template) <= limits.max_template_chars,
            f"patterns[{n}]: template longer than {limits.max_template_chars} chars",
        )
        bounded(
            len(pattern.examples) <= limits.max_examples_per_pattern,
            f"patterns[{n}]: more than {limits.max_examples_per_pattern} examples",
        )
        bounded(
            all(len(e) <= limits.max_example_chars for e in pattern.examples),
            f"patterns[{n}]: an example longer than {limits.max_example_chars} chars",
        )
