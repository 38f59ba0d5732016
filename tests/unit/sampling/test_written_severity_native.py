"""sampler.infer_severity.write in the compiled sampler, on hand-built requests against the
Python one: a kept record sent without a severity_number is forwarded with the inferred one,
its bucket's name as severity_text when it had none, and lipservice.severity_inferred = true
after the annotation. The engine appends these to the record's bytes; none of these requests
goes to the Python sampler."""

from __future__ import annotations

from dataclasses import replace

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from lipservice_otel.policy.model import Policy
from lipservice_otel.sampling.aggregates import Aggregates
from lipservice_otel.sampling.annotation import ATTR_SEVERITY_INFERRED
from lipservice_otel.sampling.compiled import CompiledSampler
from lipservice_otel.sampling.config import SamplerConfig
from lipservice_otel.sampling.sampler import Sampler
from tests.support.native import native_module, sample_on_both

DEFAULTS = SamplerConfig()
WRITING = replace(
    DEFAULTS, infer_severity=replace(DEFAULTS.infer_severity, enabled=True, write=True)
)


def request(*records: tuple[str, int, str]) -> bytes:
    """(body, severity_number, severity_text) per record."""
    out = ExportLogsServiceRequest()
    scope_logs = out.resource_logs.add().scope_logs.add()
    for n, (body, number, text) in enumerate(records):
        record = scope_logs.log_records.add(
            time_unix_nano=1_000 + n, severity_number=number, severity_text=text
        )
        record.body.string_value = body
    return out.SerializeToString()


def sample_both(policy: Policy, payload: bytes) -> ExportLogsServiceRequest:
    python = Sampler(WRITING, policy, Aggregates(1000), lambda: 1000.0)
    compiled = CompiledSampler(native_module(), WRITING, policy, Aggregates(1000), lambda: 1000.0)
    want, outcome, expected, got = sample_on_both(python, compiled, payload)
    assert got == expected
    assert (outcome.kept, outcome.kept_by_reason) == (want.kept, want.kept_by_reason)
    return got


def severities(forwarded: ExportLogsServiceRequest) -> list[tuple]:
    """(body, severity_number, severity_text, whether marked inferred, last attribute key)."""
    out = []
    for record in forwarded.resource_logs[0].scope_logs[0].log_records:
        keys = [kv.key for kv in record.attributes]
        out.append(
            (
                record.body.string_value,
                record.severity_number,
                record.severity_text,
                ATTR_SEVERITY_INFERRED in keys,
                keys[-1],
            )
        )
    return out


def test_kept_records_without_a_severity_get_the_inferred_one():
    payload = request(
        ("ERROR disk failed writing block", 0, ""),
        ("user logged in", 0, "warning"),
        ("plain info", 9, ""),
    )
    assert severities(sample_both(Policy(version=1, default_rate=1.0), payload)) == [
        ("ERROR disk failed writing block", 17, "ERROR", True, ATTR_SEVERITY_INFERRED),
        ("user logged in", 13, "warning", True, ATTR_SEVERITY_INFERRED),
        ("plain info", 9, "", False, "lipservice.reason"),
    ]


def test_shadow_mode_writes_it_after_would_keep():
    shadow = Policy(version=1, mode="shadow", default_rate=0.0)
    forwarded = sample_both(shadow, request(("user logged in", 0, "warning")))
    keys = [kv.key for kv in forwarded.resource_logs[0].scope_logs[0].log_records[0].attributes]
    assert keys[-2:] == ["lipservice.would_keep", ATTR_SEVERITY_INFERRED]


def test_a_dropped_record_is_not_written():
    forwarded = sample_both(Policy(version=1, default_rate=0.0), request(("user in", 0, "warn")))
    assert not forwarded.resource_logs
