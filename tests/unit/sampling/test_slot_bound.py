"""The per-key slots a sampler holds stay within the aggregate key cap under a flood of
distinct templates: a slot per counting key is all an interval can use.

The compiled sampler has two tables, its engine's (C) and the Python sampler's for the
requests it gives up; past the key cap it gives up every request of such a flood, and both
tables filling to the cap held ~45 MiB more than the Python sampler in bench/memory.py."""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from lipservice_otel.policy.document import policy_from_document
from lipservice_otel.sampling.aggregates import Aggregates
from lipservice_otel.sampling.annotation import ATTR_ADJUSTED_COUNT
from lipservice_otel.sampling.compiled import CompiledSampler
from lipservice_otel.sampling.config import SamplerConfig
from lipservice_otel.sampling.sampler import Sampler
from tests.support.native import native_module

KEY_CAP = 200
PER_REQUEST = 50
REQUESTS = 40  # 2000 distinct templates: ten times the cap
INFO = 9


def word(n: int) -> str:
    """A word of letters only, distinct per n: no masking rule turns it into a wildcard."""
    return "".join(chr(ord("a") + n // 26**k % 26) for k in range(4))


def flood_request(first: int, stamped: bool = False) -> bytes:
    """stamped: each record carries an upstream sampler's sampling.adjusted_count."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    kv = resource_logs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "svc"
    scope = resource_logs.scope_logs.add()
    for n in range(first, first + PER_REQUEST):
        record = scope.log_records.add()
        record.body.string_value = f"cache entry {word(n)} evicted"
        record.severity_number = INFO
        record.time_unix_nano = 1_700_000_000_000_000_000 + n
        if stamped:
            record.attributes.add(key=ATTR_ADJUSTED_COUNT).value.double_value = 4.0
    return request.SerializeToString()


def config() -> SamplerConfig:
    return SamplerConfig(max_aggregate_keys=KEY_CAP)


def policy():
    return policy_from_document({"severity_rates": {"info": 0.25}})


def sample_as_the_pipeline_does(sampler: CompiledSampler, payload: bytes) -> int:
    """Pipeline.consume_payload's use of the compiled sampler; the records received."""
    walked = sampler.walk(payload, 1 << 30)
    sampled = sampler.sample_walked(walked) if walked is not None else None
    if sampled is None:
        request = ExportLogsServiceRequest.FromString(payload)
        return sampler.sample_given_up(request).received
    return sampled[0].received


def test_the_compiled_sampler_holds_one_table_of_slots_within_the_key_cap():
    aggregates = Aggregates(KEY_CAP)
    sampler = CompiledSampler(native_module(), config(), policy(), aggregates, lambda: 1000.0)
    received, held = 0, []
    for r in range(REQUESTS):
        received += sample_as_the_pipeline_does(sampler, flood_request(r * PER_REQUEST))
        held.append(sampler._engine.slots() + len(sampler._slots))
    # The engine's table is cleared between requests once full: at most the cap plus the
    # keys of one request; the Python sampler's slots for the requests given up past the cap
    # last as long as the request.
    assert max(held) <= KEY_CAP + PER_REQUEST
    assert len(sampler._slots) == 0
    report = aggregates.drain()
    assert received == REQUESTS * PER_REQUEST
    assert sum(c.received for c in report.counts) == received
    assert report.overflow_records == received - KEY_CAP


def test_the_python_sampler_holds_its_slots_within_the_key_cap():
    aggregates = Aggregates(KEY_CAP)
    sampler = Sampler(config(), policy(), aggregates, lambda: 1000.0)
    held = []
    for r in range(REQUESTS):
        sampler.sample(ExportLogsServiceRequest.FromString(flood_request(r * PER_REQUEST)))
        held.append(len(sampler._slots))
    assert max(held) <= KEY_CAP
    assert aggregates.drain().overflow_records == REQUESTS * PER_REQUEST - KEY_CAP


def test_slots_given_up_for_upstream_stamps_are_kept_for_the_interval():
    """The requests the compiled path gives up for a reason that may hold for every request
    (a sender upstream that stamps its own adjusted count) keep the Python sampler's table:
    its slots make them cheap."""
    sampler = CompiledSampler(
        native_module(), config(), policy(), Aggregates(KEY_CAP), lambda: 1000.0
    )
    sample_as_the_pipeline_does(sampler, flood_request(0, stamped=True))
    assert len(sampler._slots) == PER_REQUEST
