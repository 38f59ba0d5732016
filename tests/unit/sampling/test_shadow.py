"""Shadow mode in the compiled sampler, on hand-built requests against the Python one.

Shadow mode forwards every record with what enforce mode would do (`lipservice.would_keep`)
and counts what enforce would keep. It is what teams run first, so the compiled sampler
takes it whole: no request of this module goes to the Python sampler. The draws include a
rate's keeps and drops, a burst, and an error recalling a record remembered in enforce mode.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from lipservice_otel.policy.model import PatternRule, Policy
from lipservice_otel.policy.reasons import REASON_BURST, REASON_ERROR_CONTEXT
from lipservice_otel.sampling.aggregates import Aggregates
from lipservice_otel.sampling.annotation import (
    ATTR_ADJUSTED_COUNT,
    ATTR_PATTERN_ID,
    ATTR_REASON,
    ATTR_WOULD_KEEP,
)
from lipservice_otel.sampling.compiled import CompiledSampler
from lipservice_otel.sampling.config import SamplerConfig
from lipservice_otel.sampling.sampler import Sampler
from lipservice_otel.text.signature import pattern_id, template_of_text
from tests.support.native import native_module, sample_on_both

SERVICE = "checkout"
INFO, ERROR = 9, 17
LOGIN = "user {n} logged in"  # the default rate
REFRESH = "cache refreshed for tenant {n}"  # a rule with a baseline: bursts
FAILED = "payment failed for order {n}"
# The draw of a traced record is its trace id's last 7 bytes: 0 keeps, all ones drops.
KEEPS = b"\x01" + bytes(15)
DROPS = b"\x02" + bytes(8) + b"\xff" * 7
ERRORED = b"\x03" + bytes(8) + b"\xff" * 7  # dropped in enforce mode, then its error comes


def template_pid(body: str) -> str:
    return pattern_id(SERVICE, template_of_text(body.format(n=1)))


ENFORCE = Policy(
    version=1,
    default_rate=0.5,
    pattern_rules={template_pid(REFRESH): PatternRule(0.1, "pattern", 0.5)},
)
SHADOW = replace(ENFORCE, version=2, mode="shadow")
# A burst past 2 x max(0.5, 0) = 1 record in a second; a budget for two of them.
CONFIG = SamplerConfig(burst_factor=2.0, burst_min_per_second=0.0, anomaly_keep_per_second=2)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request(*records: tuple[str, int, bytes]) -> bytes:
    """(body, severity, trace id or b"") per record, in one resource and scope."""
    out = ExportLogsServiceRequest()
    resource_logs = out.resource_logs.add()
    service = resource_logs.resource.attributes.add(key="service.name")
    service.value.string_value = SERVICE
    scope_logs = resource_logs.scope_logs.add()
    for n, (body, severity, trace_id) in enumerate(records):
        record = scope_logs.log_records.add(
            time_unix_nano=1_000_000 + n, severity_number=severity, trace_id=trace_id
        )
        record.body.string_value = body.format(n=n)
    return out.SerializeToString()


def both_samplers():
    clock = Clock()
    python = Sampler(CONFIG, ENFORCE, Aggregates(1000), clock)
    compiled = CompiledSampler(native_module(), CONFIG, ENFORCE, Aggregates(1000), clock)
    return python, compiled, clock


def sample_both(python: Sampler, compiled: CompiledSampler, payload: bytes):
    """Both samplers on one payload; the compiled one must not hand it to Python."""
    want, outcome, expected, got = sample_on_both(python, compiled, payload)
    assert (outcome.received, outcome.kept, outcome.recalled) == (
        want.received,
        want.kept,
        want.recalled,
    )
    assert outcome.kept_by_reason == want.kept_by_reason
    assert outcome.dropped_by_reason == want.dropped_by_reason
    assert got == expected
    assert compiled._error_context.bytes_held == python._error_context.bytes_held
    assert compiled._anomaly_budget == python._anomaly_budget
    assert compiled.to_python_since() == 0
    return want, expected


def annotations(forwarded: ExportLogsServiceRequest) -> list[tuple]:
    """(body, adjusted count, reason, would_keep) per forwarded record, in order."""
    out = []
    for resource_logs in forwarded.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                values = {kv.key: kv.value for kv in record.attributes}
                out.append(
                    (
                        record.body.string_value,
                        values[ATTR_ADJUSTED_COUNT].double_value,
                        values[ATTR_REASON].string_value,
                        values[ATTR_WOULD_KEEP].bool_value if ATTR_WOULD_KEEP in values else None,
                    )
                )
    return out


def counted(sampler: Sampler) -> dict[str, tuple[int, int]]:
    return {c.pattern_id: (c.received, c.kept) for c in sampler._aggregates.drain().counts}


def test_shadow_mode_runs_compiled_with_the_python_results():
    python, compiled, clock = both_samplers()
    # Enforce mode first: a traced record dropped and remembered for its trace's error.
    want, forwarded = sample_both(python, compiled, request((LOGIN, INFO, ERRORED)))
    assert (want.kept, forwarded.resource_logs) == (0, [])
    assert python._error_context.bytes_held > 0
    for sampler in (python, compiled):
        sampler.set_policy(SHADOW)
    clock.now += 0.5
    want, forwarded = sample_both(
        python,
        compiled,
        request(
            (LOGIN, INFO, KEEPS),
            (LOGIN, INFO, DROPS),
            *[(REFRESH, INFO, b"")] * 4,
            (FAILED, ERROR, ERRORED),
        ),
    )
    notes = annotations(forwarded)
    assert notes[:2] == [
        ("user 0 logged in", 1.0, "default", True),
        ("user 1 logged in", 1.0, "default", False),
    ]
    # Past one record a second the pattern bursts, kept whole while the budget of two lasts.
    assert [reason for _, _, reason, _ in notes[2:6]] == [
        "pattern",
        REASON_BURST,
        REASON_BURST,
        "pattern",
    ]
    assert [would for *_, would in notes[3:5]] == [True, True]
    assert notes[6][2:] == ("severity", True)
    # The error recalls its trace's record remembered in enforce mode, as error context.
    assert notes[7][:3] == ("user 0 logged in", 0.0, REASON_ERROR_CONTEXT)
    assert want.recalled == 1 and want.kept == 7 and not want.dropped_by_reason
    assert sum(want.kept_by_reason.values()) == 7
    # The would-be drop was not remembered (shadow mode forwards it already): its trace's
    # error recalls nothing.
    want, forwarded = sample_both(python, compiled, request((FAILED, ERROR, DROPS)))
    assert (want.recalled, want.kept, len(annotations(forwarded))) == (0, 1, 1)


def test_shadow_counts_what_enforce_would_keep():
    python, compiled, _ = both_samplers()
    for sampler in (python, compiled):
        sampler.set_policy(SHADOW)
    payload = request(*[(LOGIN, INFO, KEEPS), (LOGIN, INFO, DROPS)] * 3)
    want, forwarded = sample_both(python, compiled, payload)
    assert want.kept == 6 and want.kept_by_reason == Counter({"default": 6})
    assert Counter(would for *_, would in annotations(forwarded)) == Counter({True: 3, False: 3})
    counts = counted(compiled)
    assert counts == counted(python)
    assert counts == {template_pid(LOGIN): (6, 3)}
    for resource_logs in forwarded.resource_logs:
        for record in resource_logs.scope_logs[0].log_records:
            keys = [kv.key for kv in record.attributes]
            assert keys == [ATTR_ADJUSTED_COUNT, ATTR_PATTERN_ID, ATTR_REASON, ATTR_WOULD_KEEP]
