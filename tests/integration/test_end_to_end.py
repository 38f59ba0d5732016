"""The real OpenTelemetry SDK exports through the real receiver to a real gRPC sink."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict

import pytest
from opentelemetry._logs import SeverityNumber

from lipservice_otel.sampling.annotation import ATTR_ADJUSTED_COUNT, ATTR_PATTERN_ID, ATTR_REASON
from lipservice_otel.text.signature import pattern_id, template_of_text
from tests.support.received import attributes_of
from tests.support.running_service import make_settings, with_policy
from tests.support.sdk_logs import SERVICE, sdk_logger, trace_context

INFO_RATE = 0.2


INFO_LINES = (
    "GET /api/cart/{n} 200 in {n}ms",
    "user {n} added item sku-{n} to cart",
    "cache hit ratio {n}% for shard {n}",
    "worker-{n} heartbeat ok",
)


@pytest.fixture
def pipeline(sink, start_service):
    settings = with_policy(
        make_settings(sink.endpoint), severity_rates={"info": INFO_RATE, "debug": 0.0}
    )
    return start_service(settings)


def test_errors_kept_info_sampled_and_annotated(pipeline, sink):
    rng = random.Random(7)
    provider, logger = sdk_logger(pipeline.endpoint)
    sent_info = 2000
    sent_errors = 100
    for i in range(sent_info):
        line = INFO_LINES[i % len(INFO_LINES)].replace("{n}", str(rng.randrange(10_000)))
        logger.emit(body=line, severity_number=SeverityNumber.INFO, severity_text="INFO")
    for i in range(sent_errors):
        logger.emit(
            body=f"payment {i} failed: card declined",
            severity_number=SeverityNumber.ERROR,
            severity_text="ERROR",
        )
    provider.force_flush()
    provider.shutdown()

    expected_info = sent_info * INFO_RATE
    tolerance = 6 * math.sqrt(sent_info * INFO_RATE * (1 - INFO_RATE))
    received = sink.wait_for_records(sent_errors + int(expected_info - tolerance))
    pipeline.stop()
    received = sink.records()

    errors = [r for _, r in received if r.severity_number == SeverityNumber.ERROR.value]
    infos = [r for _, r in received if r.severity_number == SeverityNumber.INFO.value]
    assert len(errors) == sent_errors, "every ERROR must be forwarded"
    assert abs(len(infos) - expected_info) <= tolerance, len(infos)

    for record in errors:
        attributes = attributes_of(record)
        assert attributes[ATTR_REASON] == "severity"
        assert attributes[ATTR_ADJUSTED_COUNT] == 1.0
        assert attributes[ATTR_PATTERN_ID] == pattern_id(
            SERVICE, template_of_text(record.body.string_value)
        )
    for record in infos:
        attributes = attributes_of(record)
        assert attributes[ATTR_REASON] == "severity_default"
        assert attributes[ATTR_ADJUSTED_COUNT] == pytest.approx(1 / INFO_RATE)
        assert attributes[ATTR_PATTERN_ID] == pattern_id(
            SERVICE, template_of_text(record.body.string_value)
        )

    # The backend can rebuild the true volume from what it received.
    rebuilt = sum(attributes_of(r)[ATTR_ADJUSTED_COUNT] for _, r in received)
    assert abs(rebuilt - (sent_info + sent_errors)) <= tolerance / INFO_RATE

    # Every INFO template is still represented.
    templates = {template_of_text(r.body.string_value) for r in infos}
    assert len(templates) == len(INFO_LINES)
    assert all(resource_has_service(resource) for resource, _ in received)


def resource_has_service(resource) -> bool:
    return any(kv.key == "service.name" and kv.value.string_value for kv in resource.attributes)


def test_records_of_one_trace_share_their_fate(pipeline, sink):
    rng = random.Random(11)
    provider, logger = sdk_logger(pipeline.endpoint)
    traces = [rng.getrandbits(128) for _ in range(200)]
    per_trace = 5
    for trace_id in traces:
        for step in range(per_trace):
            logger.emit(
                body=f"step {step} of request {rng.randrange(1 << 30)} done",
                severity_number=SeverityNumber.INFO,
                context=trace_context(trace_id),
            )
    provider.force_flush()
    provider.shutdown()
    sink.wait_for_records(int(len(traces) * per_trace * INFO_RATE * 0.5))
    pipeline.stop()

    by_trace: defaultdict[bytes, int] = defaultdict(int)
    for _, record in sink.records():
        by_trace[record.trace_id] += 1
    assert by_trace, "some traces must be kept at rate 0.2"
    assert set(by_trace.values()) == {per_trace}, Counter(by_trace.values())
    kept_share = len(by_trace) / len(traces)
    assert 0.08 < kept_share < 0.35, kept_share


def test_shadow_mode_forwards_everything_with_would_keep(sink, start_service):
    settings = with_policy(make_settings(sink.endpoint), mode="shadow", default_rate=0.1)
    running = start_service(settings)
    provider, logger = sdk_logger(running.endpoint)
    sent = 500
    for i in range(sent):
        logger.emit(body=f"poll {i} returned nothing", severity_number=SeverityNumber.INFO)
    provider.force_flush()
    provider.shutdown()
    sink.wait_for_records(sent)
    running.stop()

    received = sink.records()
    assert len(received) == sent
    would_keep = [attributes_of(r)["lipservice.would_keep"] for _, r in received]
    assert all(isinstance(flag, bool) for flag in would_keep)
    assert 10 <= sum(would_keep) <= 100, sum(would_keep)
    assert all(attributes_of(r)[ATTR_ADJUSTED_COUNT] == 1.0 for _, r in received)
    assert {attributes_of(r)[ATTR_REASON] for _, r in received} == {"default"}
