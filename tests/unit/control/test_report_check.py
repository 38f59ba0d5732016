"""What a Sync report may claim: control/codec.check_report against the limits."""

from __future__ import annotations

import time

import pytest

from lipservice_otel._proto.lipservice.v1 import control_pb2
from lipservice_otel.control.codec import MAX_COUNT, InvalidReport, check_report
from lipservice_otel.control.config import ReportLimitsConfig

LIMITS = ReportLimitsConfig(
    max_counts_per_report=4,
    max_patterns_per_report=2,
    max_examples_per_pattern=2,
    max_example_chars=10,
    max_template_chars=20,
    max_name_chars=8,
    max_clock_skew_s=60.0,
)
NOW = time.time_ns()


def report(**fields) -> control_pb2.AggregateReport:
    message = control_pb2.AggregateReport(
        receiver_id="r1", interval_start_unix_nano=NOW - 10**10, interval_end_unix_nano=NOW
    )
    message.counts.add(service="svc", pattern_id="p1", severity="info", received=5, kept=2)
    message.patterns.add(pattern_id="p1", service="svc", template="GET <*>", examples=["GET /a"])
    for name, value in fields.items():
        setattr(message, name, value)
    return message


def test_an_honest_report_passes():
    check_report(report(), LIMITS, NOW)
    check_report(control_pb2.AggregateReport(), LIMITS, NOW)  # a quiet interval, no times


def edit(change):
    message = report()
    change(message)
    return message


REFUSED = {
    "kept > received": ("invalid", lambda m: setattr(m.counts[0], "kept", 6)),
    # -1 sent by a careless client arrives as 2**64 - 1.
    "a wrapped negative count": ("invalid", lambda m: setattr(m.counts[0], "received", 2**64 - 1)),
    "a count beyond doubles": (
        "invalid",
        lambda m: setattr(m.counts[0], "received", MAX_COUNT + 1),
    ),
    "huge overflow": ("invalid", lambda m: setattr(m, "overflow_records", 2**63)),
    "unknown severity": ("invalid", lambda m: setattr(m.counts[0], "severity", "panic")),
    "interval in the future": (
        "invalid",
        lambda m: setattr(m, "interval_end_unix_nano", NOW + 3600 * 10**9),
    ),
    "interval backwards": (
        "invalid",
        lambda m: setattr(m, "interval_start_unix_nano", NOW + 10**9),
    ),
    "negative time": ("invalid", lambda m: setattr(m, "interval_start_unix_nano", -1)),
    "too many counts": (
        "limits",
        lambda m: [
            m.counts.add(service="s", pattern_id=f"p{n}", severity="info") for n in range(4)
        ],
    ),
    "too many patterns": (
        "limits",
        lambda m: [m.patterns.add(pattern_id=f"p{n}", service="s") for n in range(2)],
    ),
    "too many examples": ("limits", lambda m: m.patterns[0].examples.extend(["a", "b"])),
    "long example": ("limits", lambda m: m.patterns[0].examples.append("x" * 11)),
    "long template": ("limits", lambda m: setattr(m.patterns[0], "template", "t" * 21)),
    "long service": ("limits", lambda m: setattr(m.counts[0], "service", "s" * 9)),
    "long pattern service": ("limits", lambda m: setattr(m.patterns[0], "service", "s" * 9)),
    "long receiver id": ("limits", lambda m: setattr(m, "receiver_id", "r" * 9)),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_report_that_lies_or_overflows_is_refused(case):
    reason, change = REFUSED[case]
    with pytest.raises(InvalidReport) as refused:
        check_report(edit(change), LIMITS, NOW)
    assert refused.value.reason == reason


def test_a_little_clock_skew_is_tolerated():
    skewed = edit(lambda m: setattr(m, "interval_end_unix_nano", NOW + 30 * 10**9))
    check_report(skewed, LIMITS, NOW)


def test_a_receiver_whose_clock_stepped_an_hour_back_is_still_heard():
    """The interval end only guards against reports claiming the future; the analysis times
    intervals on its own clock. An hour forward is refused (counted, the stream reopened);
    an hour back is a report like any other."""
    behind = report(
        interval_start_unix_nano=NOW - 3610 * 10**9, interval_end_unix_nano=NOW - 3600 * 10**9
    )
    check_report(behind, LIMITS, NOW)
