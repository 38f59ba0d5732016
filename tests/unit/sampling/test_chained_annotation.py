"""Two LipService instances in a chain: the second one's stamp replaces the first one's.

Tried before the fix: the second instance appended lipservice.pattern_id and lipservice.reason
(and, in shadow mode, lipservice.would_keep) again, so each record carried those keys twice.
"""

from __future__ import annotations

from collections import Counter

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from lipservice_otel.policy.document import policy_from_document
from lipservice_otel.sampling.aggregates import Aggregates
from lipservice_otel.sampling.annotation import (
    ATTR_ADJUSTED_COUNT,
    ATTR_PATTERN_ID,
    ATTR_REASON,
    ATTR_WOULD_KEEP,
)
from lipservice_otel.sampling.config import SamplerConfig
from lipservice_otel.text.signature import pattern_id, template_of_text
from tests.support.samplers import make_sampler

BODY = "cache warmed in 12 ms"
OURS = {ATTR_ADJUSTED_COUNT, ATTR_PATTERN_ID, ATTR_REASON}


def request() -> ExportLogsServiceRequest:
    message = ExportLogsServiceRequest()
    resource_logs = message.resource_logs.add()
    kv = resource_logs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "svc"
    record = resource_logs.scope_logs.add().log_records.add()
    record.body.string_value = BODY
    record.severity_number = 9
    return message


def through(document: dict, message: ExportLogsServiceRequest) -> ExportLogsServiceRequest:
    """`message` as one instance with this policy forwards it (a copy, as the wire makes)."""
    forwarded = ExportLogsServiceRequest.FromString(message.SerializeToString())
    sampler = make_sampler(SamplerConfig(), policy_from_document(document), Aggregates(1000))
    assert sampler.sample(forwarded).kept == 1
    return forwarded


def stamp(message: ExportLogsServiceRequest) -> tuple[Counter, dict]:
    (record,) = message.resource_logs[0].scope_logs[0].log_records
    keys = Counter(kv.key for kv in record.attributes)
    values = {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in record.attributes}
    return keys, values


@pytest.mark.parametrize(
    ("second", "reason"),
    [
        # Kept by its rule: the path that appends precomputed annotation bytes.
        ({"default_rate": 1.0}, "default"),
        # Kept by an exemption: the path that always calls annotate().
        ({"exemptions": [{"name": "cache", "body": True, "matches": "cache"}]}, "exempt/cache"),
    ],
)
def test_the_second_instance_replaces_the_first_ones_pattern_id_and_reason(second, reason):
    first = through(
        {"default_rate": 1.0, "exemptions": [{"name": "all", "body": True, "matches": "."}]},
        request(),
    )
    assert stamp(first)[1][ATTR_REASON] == "exempt/all"
    keys, values = stamp(through(second, first))
    assert set(keys) == OURS and set(keys.values()) == {1}
    assert values[ATTR_REASON] == reason
    assert values[ATTR_PATTERN_ID] == pattern_id("svc", template_of_text(BODY, 2048))
    assert values[ATTR_ADJUSTED_COUNT] == 1.0


def test_shadow_mode_replaces_would_keep_too():
    first = through({"mode": "shadow", "default_rate": 0.0}, request())
    assert stamp(first)[1][ATTR_WOULD_KEEP] is False
    keys, values = stamp(through({"mode": "shadow", "default_rate": 1.0}, first))
    assert set(keys.values()) == {1}
    assert values[ATTR_WOULD_KEEP] is True
