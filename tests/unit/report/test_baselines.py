"""The analysis' byte and kept baselines, which the savings report reads: from the receivers'
counts through the control plane's codec, a cycle, and the snapshot."""

from __future__ import annotations

import asyncio
import json

import pytest

from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.learn import Interval, fold_report, learn
from lipservice_otel.analysis.loop import AnalysisLoop
from lipservice_otel.analysis.state import AnalysisState
from lipservice_otel.control.codec import (
    InvalidReport,
    check_report,
    report_from_proto,
    report_to_proto,
)
from lipservice_otel.control.config import ReportLimitsConfig
from lipservice_otel.policy.model import Policy
from lipservice_otel.sampling.aggregates import IntervalReport, PatternCounts, PatternInfo
from lipservice_otel.store.memory import MemoryStore

NOW = 1_000_000.0


def report(received: int, kept: int, size: int) -> IntervalReport:
    """`received` records of `size` bytes each, `kept` of them kept, over two severities."""
    errors = received // 10
    return IntervalReport(
        counts=[
            PatternCounts(
                "api",
                "p",
                "info",
                received - errors,
                kept - errors,
                received_bytes=(received - errors) * size,
                kept_bytes=(kept - errors) * size,
            ),
            PatternCounts(
                "api",
                "p",
                "error",
                errors,
                errors,
                received_bytes=errors * size,
                kept_bytes=errors * size,
            ),
        ],
        patterns={"p": PatternInfo("api", "template <*>", ["template 1"])},
        overflow_records=0,
    )


def cycle(state: AnalysisState, reports: list[IntervalReport], elapsed: float, config) -> None:
    pending = Interval()
    for one in reports:
        # Through the wire, as a receiver's Sync report travels.
        fold_report(pending, report_from_proto(report_to_proto(one, "r", 1)), state.patterns, 100)
    learn(state, pending, config, frozenset({"error", "fatal"}), NOW, elapsed)


def test_a_cycle_turns_counts_into_bytes_and_kept_baselines():
    config = AnalysisConfig(ema_alpha=0.5)
    state = AnalysisState()
    # Two receivers' reports in a 10 s cycle: 1000 + 500 records of 120 bytes, 150 kept.
    cycle(state, [report(1000, 100, 120), report(500, 50, 120)], 10.0, config)
    pattern = state.patterns["p"]
    assert pattern.rate.mean == pytest.approx(150.0)  # records/s
    assert pattern.bytes_rate.mean == pytest.approx(150.0 * 120)
    assert pattern.kept_rate.mean == pytest.approx(15.0)
    assert pattern.kept_bytes_rate.mean == pytest.approx(15.0 * 120)
    # The next cycle is half as loud: each EMA moves halfway (alpha 0.5), together.
    cycle(state, [report(750, 75, 120)], 10.0, config)
    assert pattern.rate.mean == pytest.approx((150.0 + 75.0) / 2)
    assert pattern.bytes_rate.mean == pytest.approx((150.0 + 75.0) / 2 * 120)
    assert pattern.kept_bytes_rate.mean == pytest.approx((15.0 + 7.5) / 2 * 120)
    # A cycle without records moves them all toward zero.
    cycle(state, [], 10.0, config)
    assert pattern.kept_rate.mean == pytest.approx((15.0 + 7.5) / 4)
    assert pattern.bytes_rate.samples == pattern.rate.samples == 3


def test_snapshots_keep_the_baselines_and_older_ones_still_load():
    config = AnalysisConfig()
    state = AnalysisState()
    cycle(state, [report(1000, 100, 64)], 5.0, config)
    again = AnalysisState.from_bytes(state.to_bytes())
    assert again.patterns["p"].bytes_rate == state.patterns["p"].bytes_rate
    assert again.patterns["p"].kept_bytes_rate == state.patterns["p"].kept_bytes_rate
    # A snapshot written before bytes were counted: the new baselines start empty.
    document = json.loads(state.to_bytes())
    for key in ("bytes_rate", "kept_rate", "kept_bytes_rate"):
        del document["patterns"][0][key]
    older = AnalysisState.from_bytes(json.dumps(document).encode())
    assert older.patterns["p"].rate == state.patterns["p"].rate
    assert older.patterns["p"].bytes_rate.samples == 0
    assert older.patterns["p"].kept_bytes_rate.mean == 0.0


@pytest.mark.parametrize(
    ("received_bytes", "kept_bytes", "message"),
    [(2**53 + 1, 0, "received_bytes is out of range"), (10, 11, "kept_bytes > received_bytes")],
)
def test_byte_counts_that_cannot_be_true_are_refused(received_bytes, kept_bytes, message):
    one = report(10, 1, 1)
    one.counts[0].received_bytes, one.counts[0].kept_bytes = received_bytes, kept_bytes
    with pytest.raises(InvalidReport, match=message):
        check_report(report_to_proto(one, "r", 1), ReportLimitsConfig(), int(NOW * 1e9))


def test_the_loop_reads_its_state_under_its_lock():
    async def scenario():
        loop = AnalysisLoop(AnalysisConfig(), MemoryStore(None, 10), Policy(version=4))
        # Before a learned version, the configured base is the policy receivers run.
        return await loop.inspect(lambda state, policy: (len(state.patterns), policy.version))

    assert asyncio.run(scenario()) == (0, 4)
