"""The compiled OTLP wire walker reads what upb reads and takes nothing upb refuses.

What the walker does not take (None) goes to upb on the Python path, which refuses it with
INVALID_ARGUMENT / HTTP 400 as before, or samples it. So the property is one-sided: whatever
the walker takes, upb parses, to the same fields.
"""

from __future__ import annotations

import os

from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from lipservice_otel.policy.model import Policy
from lipservice_otel.sampling.aggregates import Aggregates
from lipservice_otel.sampling.compiled import CompiledSampler
from lipservice_otel.sampling.config import SamplerConfig
from tests.support.log_requests import deep_protobuf, request_with_bodies
from tests.support.native import native_module
from tests.support.otlp_requests import edits, mutate, requests

OWN_KEYS = {
    "sampling.adjusted_count",
    "lipservice.pattern_id",
    "lipservice.reason",
    "lipservice.would_keep",
    "lipservice.severity_inferred",
}
FUZZ = settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def upb_walk(request: ExportLogsServiceRequest) -> list:
    """What the walker should find, read from upb's parse."""
    walked = []
    for resource_logs in request.resource_logs:
        service = next(
            (
                kv.value.string_value
                for kv in resource_logs.resource.attributes
                if kv.key == "service.name"
            ),
            None,
        )
        scopes = []
        for scope_logs in resource_logs.scope_logs:
            records = []
            for record in scope_logs.log_records:
                kind = record.body.WhichOneof("value")
                stamped = any(kv.key in OWN_KEYS for kv in record.attributes)
                records.append(
                    (
                        record.time_unix_nano,
                        record.severity_number,
                        record.severity_text,
                        0 if kind is None else 1 if kind == "string_value" else 2,
                        record.body.string_value if kind == "string_value" else record.body,
                        len(record.attributes),
                        int(stamped),
                        record.trace_id,
                        record.span_id,
                    )
                )
            scopes.append(records)
        walked.append((service, scopes))
    return walked


def normalised(walked: list) -> list:
    """The walker's answer with absent ids as empty and AnyValue bytes parsed."""
    return [
        (
            service,
            [
                [
                    (
                        *record[:4],
                        record[4] if record[3] == 1 else AnyValue.FromString(record[4]),
                        *record[5:7],
                        record[7] or b"",
                        record[8] or b"",
                    )
                    for record in records
                ]
                for records in scopes
            ],
        )
        for service, scopes in walked
    ]


def check_one_sided(data: bytes) -> None:
    walked = native_module().walk(data)
    if walked is None:
        return
    try:
        request = ExportLogsServiceRequest.FromString(data)
    except DecodeError as exc:
        raise AssertionError(f"the walker took what upb refuses: {exc}") from None
    assert normalised(walked) == upb_walk(request)


@FUZZ
@given(request=requests())
def test_the_walker_reads_what_upb_reads(request):
    walked = native_module().walk(request.SerializeToString())
    assert walked is not None
    assert normalised(walked) == upb_walk(request)


@FUZZ
@given(request=requests(max_records=4), changes=edits)
def test_mutated_requests(request, changes):
    check_one_sided(mutate(request.SerializeToString(), changes))


@FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes(data):
    check_one_sided(data)


def test_what_upb_refuses_is_given_up():
    native = native_module()
    good = request_with_bodies("fine").SerializeToString()
    assert native.walk(good) is not None
    body = good.index(b"fine")
    invalid_utf8 = good[:body] + b"\xff\xfe\xfd\xfc" + good[body + 4 :]
    truncated = good[:-3]
    bad_wire_type = good + b"\x0f"
    overlong_varint = b"\x0a" + b"\xff" * 11
    for data in (invalid_utf8, truncated, bad_wire_type, overlong_varint, deep_protobuf()):
        assert native.walk(data) is None
    for data in (invalid_utf8, truncated, bad_wire_type, overlong_varint):
        try:
            ExportLogsServiceRequest.FromString(data)
        except DecodeError:
            continue
        raise AssertionError(f"upb took {data!r}")


def rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def test_no_leak_over_repeated_walks():
    native = native_module()
    request = request_with_bodies(*(f"order {n} shipped" for n in range(200)), attributes=3)
    corpus = [request.SerializeToString(), deep_protobuf(), b"\x0a\x05\x12\x03\x12\x01", b"\xff"]
    for data in corpus * 200:
        native.walk(data)
    before = rss_kib()
    for data in corpus * 3000:
        native.walk(data)
    assert rss_kib() - before < 2048


def test_no_leak_over_repeated_sampling():
    native = native_module()
    config = SamplerConfig(template_cache_size=64, max_aggregate_keys=50)
    clock = iter(range(0, 10**9, 10))  # each request 10 s on: the window holds one request's
    sampler = CompiledSampler(
        native, config, Policy(default_rate=0.3), Aggregates(50), lambda: float(next(clock))
    )
    request = request_with_bodies(*(f"order {n} shipped" for n in range(100)), attributes=2)
    for n, record in enumerate(request.resource_logs[0].scope_logs[0].log_records):
        record.trace_id = n.to_bytes(16, "big")
        record.severity_number = 17 if n % 10 == 0 else 9
    payload = request.SerializeToString()

    def run(times: int) -> None:
        for _ in range(times):
            walked = sampler.walk(payload, 1 << 20)
            assert sampler.sample_walked(walked) is not None
            sampler._aggregates.drain()

    run(300)
    before = rss_kib()
    run(3000)
    assert rss_kib() - before < 4096


def test_requests_for_the_python_sampler_say_why():
    native = native_module()
    sampler = CompiledSampler(
        native, SamplerConfig(max_attributes_per_record=2), Policy(), Aggregates(10)
    )

    def why(edit, max_body_bytes: int = 1 << 20) -> str | None:
        request = request_with_bodies("one body", "another body")
        edit(request.resource_logs[0].scope_logs[0].log_records[1])
        return sampler.walk(request.SerializeToString(), max_body_bytes).to_python

    assert why(lambda record: None) is None
    assert why(lambda record: setattr(record, "trace_id", b"short")) == "trace_id"
    assert why(lambda record: setattr(record, "span_id", b"x" * 9)) == "span_id"
    assert why(lambda record: record.attributes.add(key="sampling.adjusted_count")) == (
        "upstream_stamp"
    )
    assert why(lambda record: [record.attributes.add(key=f"k{n}") for n in range(3)]) == (
        "attributes"
    )
    assert why(lambda record: None, max_body_bytes=8) == "body_size"
