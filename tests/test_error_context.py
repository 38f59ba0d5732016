"""Error context: through the real receiver with real trace ids from the OpenTelemetry SDK,
and the window's bounds on their own."""

from __future__ import annotations

from opentelemetry._logs import SeverityNumber

from lipservice_otel.sampling.error_context import ENTRY_OVERHEAD_BYTES, ErrorContext
from tests.conftest import make_settings, with_policy
from tests.test_end_to_end import attributes_of, sdk_logger, trace_context

FAILING_TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
QUIET_TRACE = 0x00F067AA0BA902B7A3CE929D0E0E4736


def test_sampled_out_logs_of_a_failing_trace_are_forwarded(sink, start_service):
    settings = with_policy(
        make_settings(sink.endpoint, **{"analysis.embedded": False}),
        severity_rates={"info": 0.0},
    )
    running = start_service(settings)
    provider, logger = sdk_logger(running.endpoint)
    for step in range(5):
        logger.emit(
            body=f"checkout step {step} for cart 42",
            severity_number=SeverityNumber.INFO,
            context=trace_context(FAILING_TRACE),
        )
        logger.emit(
            body=f"browse step {step}",
            severity_number=SeverityNumber.INFO,
            context=trace_context(QUIET_TRACE),
        )
    provider.force_flush()
    logger.emit(
        body="payment declined: card expired",
        severity_number=SeverityNumber.ERROR,
        context=trace_context(FAILING_TRACE),
    )
    provider.force_flush()
    logger.emit(
        body="checkout rolled back for cart 42",
        severity_number=SeverityNumber.INFO,
        context=trace_context(FAILING_TRACE),
    )
    logger.emit(
        body="browse step 6",
        severity_number=SeverityNumber.INFO,
        context=trace_context(QUIET_TRACE),
    )
    provider.force_flush()
    provider.shutdown()
    sink.wait_for_records(7)
    running.stop()

    received = [record for _, record in sink.records()]
    bodies = [r.body.string_value for r in received]
    assert not any(b.startswith("browse") for b in bodies), "no error, no context"
    assert sorted(bodies) == sorted(
        [f"checkout step {n} for cart 42" for n in range(5)]
        + ["payment declined: card expired", "checkout rolled back for cart 42"]
    )
    for record in received:
        values = attributes_of(record)
        assert record.trace_id == FAILING_TRACE.to_bytes(16, "big")
        if record.severity_number == SeverityNumber.ERROR.value:
            assert values["lipservice.reason"] == "severity"
            assert values["sampling.adjusted_count"] == 1.0
        else:
            # Kept for context, not by probability: it stands for no other record.
            assert values["lipservice.reason"] == "error_context"
            assert values["sampling.adjusted_count"] == 0.0
    context_kept = running.service.telemetry.value(
        "lipservice_sampler_kept_records", reason="error_context"
    )
    assert context_kept == 1  # the later record; the recalled five ride with the error
    recalled = running.service.telemetry.value("lipservice_error_context_recalled_records")
    assert recalled == 5
    assert running.service.telemetry.value("lipservice_exporter_sent_records", exporter="otlp") == 7


ORIGIN = (b"resource", b"scope")


def remember_all(context: ErrorContext, trace_ids: list[bytes], record: bytes, at: float) -> None:
    for trace_id in trace_ids:
        context.remember(trace_id, at, ORIGIN, record)


def test_a_long_trace_keeps_its_last_records_only():
    context = ErrorContext(60.0, 1 << 30, 30.0, 100, max_records_per_trace=4)
    for n in range(10):
        context.remember(b"t" * 16, 1.0, ORIGIN, f"step {n}".encode())
    recalled = context.recall(b"t" * 16, 1.0)
    assert [entry[3] for entry in recalled] == [b"step 6", b"step 7", b"step 8", b"step 9"]


def test_the_byte_cap_counts_bookkeeping_and_holds_what_is_queued():
    record = b"x" * 100
    cap = 50 * (len(record) + ENTRY_OVERHEAD_BYTES)
    context = ErrorContext(60.0, cap, 30.0, 100, max_records_per_trace=256)
    remember_all(context, [n.to_bytes(16, "big") for n in range(200)], record, 1.0)
    # Only the newest 50 fit: the oldest traces were forgotten.
    assert context.bytes_held == cap
    assert context.recall((149).to_bytes(16, "big"), 1.0) == []
    assert len(context.recall((150).to_bytes(16, "big"), 1.0)) == 1
    # A recalled entry is still in the window queue until it ages out: still counted.
    assert context.bytes_held == cap
    context.remember(b"later".ljust(16), 100.0, ORIGIN, record)  # the window moved on
    assert context.bytes_held == len(record) + ENTRY_OVERHEAD_BYTES


def test_recall_returns_only_records_inside_the_window():
    context = ErrorContext(5.0, 1 << 30, 30.0, 100, max_records_per_trace=256)
    context.remember(b"t" * 16, 1.0, ORIGIN, b"old")
    context.remember(b"t" * 16, 4.0, ORIGIN, b"recent")
    assert [entry[3] for entry in context.recall(b"t" * 16, 7.0)] == [b"recent"]
    assert context.is_hot(b"t" * 16, 30.0) and not context.is_hot(b"t" * 16, 40.0)
