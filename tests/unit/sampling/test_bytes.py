"""Bytes per pattern: each counted record's encoded size as received, all and kept, the same
from both samplers and from the receiver's two ways in (parsed request, bytes walked)."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from lipservice_otel.policy.document import policy_from_document
from lipservice_otel.sampling.aggregates import OTHER_PATTERN_ID, Aggregates
from lipservice_otel.sampling.compiled import CompiledSampler
from lipservice_otel.sampling.config import SamplerConfig
from lipservice_otel.sampling.sampler import Sampler
from lipservice_otel.text.signature import pattern_id, template_of_text
from tests.support.native import native_module

INFO, ERROR = 9, 17
# Every INFO record is dropped, every ERROR kept (the severity floor): what is kept is known.
DROP_INFO = {"default_rate": 0.0, "severity_floor": "error"}


def two_service_request() -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    for service, bodies in (
        ("checkout", [("cart 1 has 3 items", INFO), ("cart 22 has 14 items", INFO)]),
        ("payments", [("card declined for order 7", ERROR), ("card declined for order 81", INFO)]),
    ):
        resource_logs = request.resource_logs.add()
        kv = resource_logs.resource.attributes.add()
        kv.key, kv.value.string_value = "service.name", service
        scope = resource_logs.scope_logs.add()
        for n, (body, severity) in enumerate(bodies):
            record = scope.log_records.add()
            record.body.string_value = body
            record.severity_number = severity
            record.time_unix_nano = 1_700_000_000_000_000_000 + n
            attribute = record.attributes.add()
            attribute.key, attribute.value.string_value = "user", "u" * (n + 1)
    return request


def sizes_by_key(request: ExportLogsServiceRequest) -> dict[tuple, list[int]]:
    """Each record's serialized size, by (service, pattern id, bucket), computed apart."""
    out: dict[tuple, list[int]] = {}
    for resource_logs in request.resource_logs:
        service = resource_logs.resource.attributes[0].value.string_value
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                pid = pattern_id(service, template_of_text(record.body.string_value))
                bucket = "error" if record.severity_number >= ERROR else "info"
                out.setdefault((service, pid, bucket), []).append(len(record.SerializeToString()))
    return out


def sampled(implementation: str, way_in: str, max_keys: int = 1000, request=None):
    aggregates = Aggregates(max_keys)
    config = SamplerConfig(max_aggregate_keys=max_keys)
    policy = policy_from_document(DROP_INFO)
    if implementation == "compiled":
        sampler = CompiledSampler(native_module(), config, policy, aggregates)
    else:
        sampler = Sampler(config, policy, aggregates)
    request = request or two_service_request()
    result = None
    if way_in == "walked" and implementation == "compiled":
        # As Pipeline.consume_payload: the bytes walked, or parsed when the walk gives up.
        payload = request.SerializeToString()
        walked = sampler.walk(payload, 1 << 20)
        result = sampler.sample_walked(walked)
        outcome = (
            result[0]
            if result is not None
            else sampler.sample(ExportLogsServiceRequest.FromString(payload))
        )
    else:
        outcome = sampler.sample(request)
    counts = {(c.service, c.pattern_id, c.severity_bucket): c for c in aggregates.drain().counts}
    return outcome, counts, result is not None


WAYS = [("python", "parsed"), ("compiled", "parsed"), ("compiled", "walked")]


@pytest.mark.parametrize(("implementation", "way_in"), WAYS)
def test_bytes_are_the_records_sizes_as_received(implementation, way_in):
    expected = sizes_by_key(two_service_request())
    outcome, counts, walked = sampled(implementation, way_in)
    assert walked == (way_in == "walked")
    assert (outcome.received, outcome.kept) == (4, 1)
    assert set(counts) == set(expected)
    for key, sizes in expected.items():
        assert counts[key].received_bytes == sum(sizes), key
        assert counts[key].kept_bytes == (sum(sizes) if key[2] == "error" else 0), key
    # The sizes by hand, for one record: tag+len of body (AnyValue tag+len+text), severity,
    # time, attribute; nothing of the annotation the kept one gained.
    error = next(c for key, c in counts.items() if key[2] == "error")
    body = len("card declined for order 7")
    attribute = 2 + len("user") + 2 + 2 + 1  # KeyValue: key, AnyValue{string "u"}
    assert error.kept_bytes == (2 + 2 + body) + 2 + 9 + (2 + attribute)


@pytest.mark.parametrize(("implementation", "way_in"), WAYS)
def test_overflow_counts_bytes_too(implementation, way_in):
    expected = sizes_by_key(two_service_request())
    # One key of its own; the others count as `other` (of their service and bucket).
    _, counts, _ = sampled(implementation, way_in, max_keys=2)
    overflowed = [c for c in counts.values() if c.pattern_id == OTHER_PATTERN_ID]
    assert overflowed
    assert sum(c.received_bytes for c in counts.values()) == sum(map(sum, expected.values()))
    assert sum(c.kept_bytes for c in counts.values()) == sum(
        sum(sizes) for key, sizes in expected.items() if key[2] == "error"
    )


@pytest.mark.parametrize("implementation", ["python", "compiled"])
def test_a_cleared_id_counts_as_received(implementation):
    """A trace id of the wrong length is cleared before forwarding; its bytes were received."""
    request = two_service_request()
    request.resource_logs[1].scope_logs[0].log_records[0].trace_id = b"\x01\x02\x03"
    expected = sizes_by_key(request)
    outcome, counts, _ = sampled(implementation, "parsed", request=request)
    assert outcome.cleared_trace_ids == 1
    error = next(c for key, c in counts.items() if key[2] == "error")
    assert (
        error.kept_bytes
        == error.received_bytes
        == sum(expected[next(k for k in expected if k[2] == "error")])
    )
    assert error.kept_bytes == len(b"\x01\x02\x03") + 2 + 53


def test_shadow_mode_counts_what_enforce_would_keep():
    """Everything is forwarded, but the counts are the projection: kept as enforce keeps."""
    aggregates = Aggregates(1000)
    policy = policy_from_document({**DROP_INFO, "mode": "shadow"})
    outcome = Sampler(SamplerConfig(), policy, aggregates).sample(two_service_request())
    assert (outcome.received, outcome.kept) == (4, 4)
    counts = aggregates.drain().counts
    expected = sizes_by_key(two_service_request())
    assert sum(c.kept for c in counts) == 1
    assert sum(c.kept_bytes for c in counts) == sum(
        sum(sizes) for key, sizes in expected.items() if key[2] == "error"
    )
