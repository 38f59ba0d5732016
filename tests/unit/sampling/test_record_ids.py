"""Trace ids that are not ids: an all-zero trace id is sampled and remembered as no id.

Tried before the fix: an all-zero id gave randomness 0, so every such record was kept at any
rate above 0 (400 of 400 below), and all of them shared one error-context "trace", so one
error with that id recalled every record dropped with it (3 below).
(Ids of the wrong length: tests/integration/test_invalid_ids_downstream.py.)
"""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from lipservice_otel.policy.document import policy_from_document
from lipservice_otel.sampling.aggregates import Aggregates
from lipservice_otel.sampling.config import SamplerConfig
from lipservice_otel.sampling.sampler import Sampler
from tests.support.samplers import make_sampler

ZERO_TRACE = bytes(16)
INFO, ERROR = 9, 17


def zero_traced(bodies, severity=INFO) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    for n, body in enumerate(bodies):
        record = scope.log_records.add()
        record.body.string_value = body
        record.severity_number = severity
        record.time_unix_nano = 1_700_000_000_000_000_000 + n
        record.trace_id = ZERO_TRACE
    return request


def sampler(rate: float) -> Sampler:
    policy = policy_from_document({"default_rate": rate})
    return make_sampler(SamplerConfig(), policy, Aggregates(1000))


def test_all_zero_trace_ids_are_drawn_like_untraced_records():
    outcome = sampler(0.5).sample(zero_traced([f"job {n} done" for n in range(400)]))
    assert 140 < outcome.kept < 260


def test_all_zero_trace_ids_share_no_error_context():
    zero = sampler(0.0)
    assert zero.sample(zero_traced(["step one", "step two", "step three"])).kept == 0
    outcome = zero.sample(zero_traced(["it failed"], severity=ERROR))
    assert (outcome.kept, outcome.recalled) == (1, 0)
