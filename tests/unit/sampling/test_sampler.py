"""The sampler on hand-built requests: annotations, counting, exemptions, policy swaps."""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from lipservice_otel.policy.document import policy_from_document
from lipservice_otel.policy.model import decide
from lipservice_otel.sampling.aggregates import OTHER_PATTERN_ID, Aggregates
from lipservice_otel.sampling.annotation import ATTR_ADJUSTED_COUNT, ATTR_PATTERN_ID, ATTR_REASON
from lipservice_otel.sampling.config import SamplerConfig
from lipservice_otel.sampling.sampler import count_records, record_randomness
from lipservice_otel.text.signature import pattern_id, template_of_text
from tests.support.samplers import make_sampler

INFO, ERROR = 9, 17


def make_request(bodies, service="svc", severity=INFO, resource_attrs=None, trace_id=b""):
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    for key, value in {"service.name": service, **(resource_attrs or {})}.items():
        kv = resource_logs.resource.attributes.add()
        kv.key, kv.value.string_value = key, value
    scope = resource_logs.scope_logs.add()
    for n, body in enumerate(bodies):
        record = scope.log_records.add()
        record.body.string_value = body
        record.severity_number = severity
        record.time_unix_nano = 1_700_000_000_000_000_000 + n
        record.trace_id = trace_id
    return request


def attributes(record) -> dict:
    out = {}
    for kv in record.attributes:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind)
    return out


def records(request):
    return [r for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]


def sampler_for(document, max_keys=1000):
    aggregates = Aggregates(max_keys)
    return make_sampler(SamplerConfig(), policy_from_document(document), aggregates), aggregates


def test_kept_records_match_the_decision_function():
    sampler, _ = sampler_for({"default_rate": 0.3})
    bodies = [f"request {n} served in {n % 97}ms" for n in range(2000)]
    request = make_request(bodies)
    expected = []
    for index, record in enumerate(records(request), start=1):
        pid = pattern_id("svc", template_of_text(record.body.string_value))
        randomness = record_randomness(record, record.body.string_value.encode(), index)
        expected.append(decide(sampler.policy, pid, INFO, randomness).keep)
    outcome = sampler.sample(request)
    kept_bodies = [r.body.string_value for r in records(request)]
    assert kept_bodies == [b for b, keep in zip(bodies, expected, strict=True) if keep]
    assert outcome.kept == sum(expected)
    assert 500 < outcome.kept < 700
    assert outcome.dropped_by_reason == {"default": 2000 - outcome.kept}


def test_annotations_and_upstream_adjusted_count_multiplies():
    sampler, _ = sampler_for({"default_rate": 0.5})
    request = make_request(["same line"] * 200)
    for record in records(request)[:100]:
        kv = record.attributes.add()
        kv.key, kv.value.double_value = ATTR_ADJUSTED_COUNT, 3.0
    sampler.sample(request)
    kept = records(request)
    assert kept
    expected_pid = pattern_id("svc", "same line")
    for record in kept:
        values = attributes(record)
        assert values[ATTR_PATTERN_ID] == expected_pid
        assert values[ATTR_REASON] == "default"
        assert values[ATTR_ADJUSTED_COUNT] in (2.0, 6.0)
        assert sum(kv.key == ATTR_ADJUSTED_COUNT for kv in record.attributes) == 1
    assert {attributes(r)[ATTR_ADJUSTED_COUNT] for r in kept} == {2.0, 6.0}


def test_every_record_is_counted_kept_or_dropped():
    sampler, aggregates = sampler_for({"default_rate": 0.1})
    request = make_request([f"job {n} done" for n in range(1000)])
    request.resource_logs.extend(make_request(["disk full"] * 10, severity=ERROR).resource_logs)
    outcome = sampler.sample(request)
    report = aggregates.drain()
    by_key = {(c.pattern_id, c.severity_bucket): c for c in report.counts}
    noisy = by_key[(pattern_id("svc", "job <*> done"), "info")]
    errors = by_key[(pattern_id("svc", "disk full"), "error")]
    assert noisy.received == 1000 and noisy.kept == outcome.kept - 10
    assert errors.received == 10 and errors.kept == 10
    assert report.patterns[noisy.pattern_id].template == "job <*> done"
    assert report.patterns[noisy.pattern_id].examples[0] == "job 0 done"
    assert aggregates.drain().counts == []  # a new interval starts empty


def test_distinct_keys_are_capped_and_overflow_counted():
    sampler, aggregates = sampler_for({}, max_keys=50)
    request = make_request([f"unique template {'x' * n}" for n in range(500)])
    sampler.sample(request)
    report = aggregates.drain()
    assert len(report.counts) <= 51
    assert report.overflow_records == 450
    other = [c for c in report.counts if c.pattern_id == OTHER_PATTERN_ID]
    assert other[0].received == 450
    assert sum(c.received for c in report.counts) == 500


def test_exemptions_keep_records_whatever_the_rate():
    sampler, _ = sampler_for(
        {
            "default_rate": 0.0,
            "exemptions": [
                {"name": "payments", "resource": "service.namespace", "equals": "payments"},
                {"name": "audit", "attribute": "audit", "equals": "true"},
                {"name": "security", "body": True, "matches": "(?i)login failed"},
            ],
        }
    )
    request = make_request(["charge ok"] * 3, resource_attrs={"service.namespace": "payments"})
    request.resource_logs.extend(
        make_request(["noise"] * 5 + ["LOGIN FAILED for bob"]).resource_logs
    )
    audited = request.resource_logs[1].scope_logs[0].log_records[0]
    kv = audited.attributes.add()
    kv.key, kv.value.bool_value = "audit", True
    outcome = sampler.sample(request)
    reasons = sorted(attributes(r)[ATTR_REASON] for r in records(request))
    assert reasons == ["exempt/audit"] + ["exempt/payments"] * 3 + ["exempt/security"]
    assert outcome.dropped == 4


def test_new_policy_applies_from_the_next_request():
    sampler, _ = sampler_for({"default_rate": 0.0})
    first = make_request(["tick"] * 10)
    sampler.sample(first)
    assert count_records(first) == 0
    sampler.set_policy(policy_from_document({"default_rate": 1.0}, version=2))
    second = make_request(["tick"] * 10)
    sampler.sample(second)
    assert count_records(second) == 10


def test_empty_scopes_and_resources_are_pruned():
    sampler, _ = sampler_for({"default_rate": 0.0})
    request = make_request(["gone"] * 3)
    sampler.sample(request)
    assert len(request.resource_logs) == 0
