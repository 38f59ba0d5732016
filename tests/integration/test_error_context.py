"""Error context: through the real receiver with real trace ids from the OpenTelemetry SDK
(the window's bounds on their own: tests/unit/sampling/test_error_context.py)."""

from __future__ import annotations

from opentelemetry._logs import SeverityNumber

from tests.support.received import attributes_of
from tests.support.running_service import make_settings, with_policy
from tests.support.sdk_logs import sdk_logger, trace_context

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
