"""Conversions between our values and the control-plane protobuf messages (lipservice.v1)."""

from __future__ import annotations

from lipservice_otel._proto.lipservice.v1 import control_pb2
from lipservice_otel.sampling.aggregates import IntervalReport, PatternCounts, PatternInfo


def report_to_proto(
    report: IntervalReport, receiver_id: str, policy_version: int
) -> control_pb2.AggregateReport:
    message = control_pb2.AggregateReport(
        receiver_id=receiver_id,
        overflow_records=report.overflow_records,
        policy_version=policy_version,
    )
    message.counts.extend(
        control_pb2.PatternCount(
            service=c.service,
            pattern_id=c.pattern_id,
            severity=c.severity_bucket,
            received=c.received,
            kept=c.kept,
        )
        for c in report.counts
    )
    message.patterns.extend(
        control_pb2.PatternSample(
            pattern_id=pid, service=info.service, template=info.template, examples=info.examples
        )
        for pid, info in report.patterns.items()
    )
    return message


def report_from_proto(message: control_pb2.AggregateReport) -> IntervalReport:
    return IntervalReport(
        counts=[
            PatternCounts(c.service, c.pattern_id, c.severity, c.received, c.kept)
            for c in message.counts
        ],
        patterns={
            p.pattern_id: PatternInfo(p.service, p.template, list(p.examples))
            for p in message.patterns
        },
        overflow_records=message.overflow_records,
    )
