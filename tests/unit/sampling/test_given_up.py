"""A request the compiled sampler gives up goes through its C engine once, then to the
Python sampler: Pipeline.consume_payload hands it over parsed, with the same result as the
Python sampler's own pipeline. Counted by wrapping the real engine (every call passed on)."""

from __future__ import annotations

import asyncio

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from lipservice_otel.exporter.config import DebugExporterConfig, QueueConfig, RetryConfig
from lipservice_otel.exporter.debug import DebugExporter
from lipservice_otel.exporter.queue import SendingQueue
from lipservice_otel.policy.model import Policy
from lipservice_otel.receiver.pipeline import Pipeline
from lipservice_otel.sampling.aggregates import Aggregates
from lipservice_otel.sampling.compiled import TO_PYTHON_REQUEST, CompiledSampler
from lipservice_otel.sampling.config import SamplerConfig
from lipservice_otel.sampling.sampler import Sampler
from lipservice_otel.telemetry import Telemetry
from tests.support.native import native_module

KEY_CAP = 3
RECORDS = 12


class CountedEngine:
    """The compiled sampler's engine, its sample() runs counted."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.runs = 0

    def sample(self, walked, state):
        self.runs += 1
        return self._engine.sample(walked, state)

    def __getattr__(self, name: str):
        return getattr(self._engine, name)


def payload(first: int) -> bytes:
    """More templates than the aggregate key cap (the engine gives it up after its first
    pass), one record an upstream stamp (given up at once) when `first` is odd."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name").value.string_value = "svc"
    scope_logs = resource_logs.scope_logs.add()
    for n in range(RECORDS):
        record = scope_logs.log_records.add(
            time_unix_nano=1_000_000 + first * RECORDS + n, severity_number=9
        )
        record.body.string_value = f"step {'abcdefghijklmnop'[n]} done after {n} ms"
        if first % 2 and n == 0:
            record.attributes.add(key="sampling.adjusted_count").value.double_value = 2.0
    return request.SerializeToString()


def pipeline_of(sampler: Sampler) -> tuple[Pipeline, SendingQueue, Telemetry]:
    telemetry = Telemetry()
    queue = SendingQueue(
        DebugExporter(DebugExporterConfig()), QueueConfig(), RetryConfig(), telemetry
    )
    return Pipeline(sampler, queue, telemetry), queue, telemetry


def queued(queue: SendingQueue) -> list[ExportLogsServiceRequest]:
    return [ExportLogsServiceRequest.FromString(q.payload) for q in queue._pending]


def test_a_request_given_up_runs_the_engine_once():
    config = SamplerConfig(max_aggregate_keys=KEY_CAP)
    policy = Policy(version=1, default_rate=0.5)
    compiled = CompiledSampler(native_module(), config, policy, Aggregates(KEY_CAP), lambda: 9.0)
    engine = compiled._engine = CountedEngine(compiled._engine)
    python = Sampler(config, policy, Aggregates(KEY_CAP), lambda: 9.0)
    (fast, fast_queue, telemetry), (slow, slow_queue, _) = (
        pipeline_of(compiled),
        pipeline_of(python),
    )
    for first in range(4):
        data = payload(first)
        got = asyncio.run(fast.consume_payload(data, "grpc"))
        want = asyncio.run(slow.consume_payload(data, "grpc"))
        assert (got.records, got.refusal, got.response) == (want.records, None, want.response)
        assert engine.runs == first + 1
    assert queued(fast_queue) == queued(slow_queue) and queued(fast_queue)
    assert telemetry.value("lipservice_sampler_python_records", reason=TO_PYTHON_REQUEST) == (
        4 * RECORDS
    )
    fast_report, slow_report = compiled._aggregates.drain(), python._aggregates.drain()
    assert fast_report.overflow_records == slow_report.overflow_records > 0
    assert sorted(fast_report.counts, key=str) == sorted(slow_report.counts, key=str)
