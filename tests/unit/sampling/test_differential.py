"""The compiled sampler against the Python one, its specification: the same requests in the
same order, the same decisions, counts, annotations, error context and forwarded messages.

Forwarded requests are compared parsed, not byte for byte: the compiled path splices the kept
records' bytes and appends the annotation after each record's own fields, where upb would
serialize the attributes (field 6) before the ids (fields 9, 10); the messages are equal.

With tenants (a header per request, or a resource attribute, or a tenant's token overriding
either; a cap of two names so some overflow to `other`) the same holds, with the per-tenant
counts and pattern ids compared too.

Byte counts are compared for intervals whose requests were all canonically encoded (what
protobuf writes): the compiled path counts a record's bytes as sent, the Python one the size
of the parsed record, and a mutated request (a field sent twice, say) re-encodes shorter.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from lipservice_otel.policy.model import Exemption, PatternRule, Policy
from lipservice_otel.receiver.limits import refuse_large_bodies
from lipservice_otel.sampling.aggregates import Aggregates
from lipservice_otel.sampling.compiled import CompiledSampler
from lipservice_otel.sampling.config import SamplerConfig
from lipservice_otel.sampling.sampler import Sampler, _string_attribute
from lipservice_otel.sampling.tenant import DEFAULT_TENANT, OTHER_TENANT, TenantKey
from lipservice_otel.text.signature import pattern_id, template_of_value
from tests.support.native import native_module
from tests.support.otlp_requests import edits, mutate, requests

MAX_BODY_BYTES = 2000
TENANT_ATTRIBUTE = "k8s.namespace.name"
TENANT_HEADER = "x-scope-orgid"
# Sent as tenants: missing, empty, and three names for a cap of two.
TENANT_VALUES = [None, "", "team-a", "team-b", "team-c"]
MAX_TENANTS = 2
TENANCY = {
    "none": None,
    "header": TenantKey("header", TENANT_HEADER),
    "resource": TenantKey("resource", TENANT_ATTRIBUTE),
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def python_path(sampler: Sampler, payload: bytes, tenants=(None, None)):
    """What the receiver pipeline does with the Python sampler; `tenants`: the request's
    header tenant and the tenant of the token it came with."""
    request = ExportLogsServiceRequest.FromString(payload)
    too_large, _ = refuse_large_bodies(request, MAX_BODY_BYTES, len(payload))
    outcome = sampler.sample(request, *tenants)
    return outcome, too_large, request


def compiled_path(sampler: CompiledSampler, payload: bytes, tenants=(None, None)):
    """What Pipeline.consume_payload does with the compiled one."""
    walked = sampler.walk(payload, MAX_BODY_BYTES)
    if walked is None:
        return python_path(sampler, payload, tenants)
    sampled = sampler.sample_walked(walked, *tenants)
    if sampled is None:
        # Only for what compiled.py names: the walk's reasons, the key cap (exemptions,
        # shadow mode, written severities and the rest run in the engine).
        assert walked.to_python is not None or sampler._past_key_cap
        # Given up: parsed, and straight to the Python sampler (no second engine run).
        request = ExportLogsServiceRequest.FromString(payload)
        too_large, _ = refuse_large_bodies(request, MAX_BODY_BYTES, len(payload))
        return sampler.sample_given_up(request, *tenants), too_large, request
    outcome, forwarded = sampled
    return outcome, 0, ExportLogsServiceRequest.FromString(forwarded)


def learned_policy(
    requests_: list[ExportLogsServiceRequest], rng: random.Random, tenants: tuple[str, ...]
) -> Policy:
    """Rules for some of the requests' patterns (in each of `tenants`): rates, small
    baselines (bursts), a merged pattern with a member's own baseline; the rest are new."""
    rules, aliases, members = {}, {}, {}
    merged = None
    for request in requests_:
        for resource_logs in request.resource_logs:
            service = next(
                (
                    kv.value.string_value or "unknown_service"
                    for kv in resource_logs.resource.attributes
                    if kv.key == "service.name"
                ),
                "unknown_service",
            )
            for scope_logs in resource_logs.scope_logs:
                for record, tenant in (
                    (record, tenant) for record in scope_logs.log_records for tenant in tenants
                ):
                    pid = pattern_id(service, template_of_value(record.body, 2048), tenant)
                    if rng.random() < 0.3:
                        continue
                    if merged is None:
                        merged = pid
                    if rng.random() < 0.3 and pid != merged:
                        aliases[pid] = merged
                        members[pid] = PatternRule(rng.choice([0.2, 0.5]), "pattern", 0.5)
                    else:
                        rules[pid] = PatternRule(
                            rng.choice([0.0, 0.1, 0.5, 1.0]), "pattern", rng.choice([0, 0.5, 3])
                        )
    return Policy(
        version=2,
        default_rate=0.25,
        severity_rates={"debug": 0.05, "warn": 0.8},
        pattern_rules=rules,
        pattern_aliases=aliases,
        signature_rules=members,
        learned=True,
    )


def exempting_policy(requests_, rng: random.Random, base: Policy) -> Policy:
    """`base` with exemptions of every scope, by equals and by regex, on values the requests
    hold (so some match) and on values they do not; a key present on no record."""
    record_values, resource_values, bodies_ = [], [], [""]
    for request in requests_:
        for resource_logs in request.resource_logs:
            for kv in resource_logs.resource.attributes:
                resource_values.append((kv.key, _string_attribute((kv,), kv.key)))
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    bodies_.append(record.body.string_value)
                    for kv in record.attributes:
                        record_values.append((kv.key, _string_attribute((kv,), kv.key)))
    candidates = [
        Exemption("never", "attribute", "user", equals="no such value"),
        Exemption("pod", "attribute", "k8s.pod"),  # presence alone
        Exemption(
            "digit", "attribute", rng.choice(["user", "http.status"]), pattern=re.compile(r"\d")
        ),
        Exemption("host", "resource", "host", equals="3"),
        Exemption("d-service", "resource", "service.name", pattern=re.compile("^d")),
        Exemption("loud", "body", "", pattern=re.compile("(?i)error|fail")),
        Exemption("empty", "body", "", equals=""),
        Exemption("body", "body", "", equals=rng.choice(bodies_)),
    ]
    for scope, values in (("attribute", record_values), ("resource", resource_values)):
        if values:
            key, value = rng.choice(values)
            if value is not None:
                candidates.append(Exemption("seen-" + scope, scope, key, equals=value))
                candidates.append(
                    Exemption(
                        "seen-re-" + scope, scope, key, pattern=re.compile(re.escape(value[:3]))
                    )
                )
    chosen = rng.sample(candidates, rng.randint(1, 4))
    return replace(base, exemptions=tuple(chosen))


# Shadow mode twice: plainly, and over a learned policy (new patterns, bursts, the budget).
# Exemptions over a default policy, a learned one and shadow mode.
POLICIES = [
    "default",
    "severity",
    "learned",
    "learned",
    "shadow",
    "shadow-learned",
    "exempt",
    "exempt-learned",
    "exempt-shadow",
]


def policy_named(name: str, requests_, rng, tenants: tuple[str, ...] = ("",)) -> Policy:
    if name == "default":
        return Policy(version=1, default_rate=0.3)
    if name == "severity":
        return Policy(version=1, default_rate=0.5, severity_rates={"info": 0.1, "unspecified": 0.2})
    if name == "shadow":
        return Policy(version=1, mode="shadow", default_rate=0.3)
    if name == "shadow-learned":
        return replace(learned_policy(requests_, rng, tenants), mode="shadow")
    if name == "exempt":
        return exempting_policy(requests_, rng, Policy(version=1, default_rate=0.1))
    if name == "exempt-learned":
        return exempting_policy(requests_, rng, learned_policy(requests_, rng, tenants))
    if name == "exempt-shadow":
        return exempting_policy(requests_, rng, Policy(version=1, mode="shadow", default_rate=0.2))
    return learned_policy(requests_, rng, tenants)


def configs() -> st.SearchStrategy:
    return st.builds(
        lambda keys, cache, budget, context, infer, write: SamplerConfig(
            max_aggregate_keys=keys,
            template_cache_size=cache,
            anomaly_keep_per_second=budget,
            max_attributes_per_record=3,
            error_context=replace(SamplerConfig().error_context, enabled=context),
            infer_severity=replace(SamplerConfig().infer_severity, enabled=infer, write=write),
        ),
        st.sampled_from([1000, 3]),
        st.sampled_from([20_000, 0]),
        st.sampled_from([2000, 3]),
        st.booleans(),
        st.booleans(),
        st.sampled_from([False, False, False, True]),
    )


def with_resource_tenants(request: ExportLogsServiceRequest, rng: random.Random):
    """A copy whose resources name a tenant (some not, one with a value that is no string)."""
    out = ExportLogsServiceRequest()
    out.CopyFrom(request)
    for resource_logs in out.resource_logs:
        value = rng.choice([*TENANT_VALUES, 7])
        if value is None:
            continue
        attribute = resource_logs.resource.attributes.add(key=TENANT_ATTRIBUTE)
        if isinstance(value, int):
            attribute.value.int_value = value
        else:
            attribute.value.string_value = value
    return out


def payloads(draw_requests, changes) -> list[bytes]:
    out = []
    for request, change in zip(draw_requests, changes, strict=True):
        data = request.SerializeToString()
        out.append(mutate(data, change) if change else data)
    return out


def drained(aggregates: Aggregates, with_bytes: bool = True):
    report = aggregates.drain()
    counts = sorted(
        (c.tenant, c.service, c.pattern_id, c.severity_bucket, c.received, c.kept)
        + ((c.received_bytes, c.kept_bytes) if with_bytes else ())
        for c in report.counts
    )
    patterns = {
        pid: (i.tenant, i.service, i.template, i.examples) for pid, i in report.patterns.items()
    }
    return counts, patterns, report.overflow_records


def canonical(payload: bytes) -> bool:
    """Whether protobuf would write these bytes itself (then sizes as received and as parsed
    agree); a payload it cannot parse counts nothing, so it does not matter."""
    try:
        return ExportLogsServiceRequest.FromString(payload).SerializeToString() == payload
    except DecodeError:
        return True


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    batch=st.lists(st.one_of(requests(), requests(clean=True)), min_size=1, max_size=4),
    changes=st.lists(st.one_of(st.none(), st.none(), edits), min_size=4, max_size=4),
    steps=st.lists(st.sampled_from([0.0, 0.3, 1.0, 2.5]), min_size=4, max_size=4),
    config=configs(),
    policy=st.sampled_from(POLICIES),
    seed=st.integers(0, 2**16),
    drain_after=st.integers(0, 4),
    tenancy=st.sampled_from(["none", "none", "header", "resource"]),
)
def test_both_samplers_agree(batch, changes, steps, config, policy, seed, drain_after, tenancy):
    native = native_module()
    rng = random.Random(seed)
    tenant_key = TENANCY[tenancy]
    tenants = ("",) if tenant_key is None else ("team-a", "team-b", DEFAULT_TENANT, OTHER_TENANT)
    if tenancy == "resource":
        batch = [with_resource_tenants(request, rng) for request in batch]
    # The header's tenant, and sometimes a tenant's token that overrides header and resource.
    headers = [
        (
            rng.choice(TENANT_VALUES) if tenancy == "header" else None,
            rng.choice([None, None, "team-b"]) if tenant_key is not None else None,
        )
        for _ in batch
    ]
    chosen = policy_named(policy, batch, rng, tenants)
    clock = Clock()
    twin = Sampler(
        config, chosen, Aggregates(config.max_aggregate_keys), clock, tenant_key, MAX_TENANTS
    )
    compiled = CompiledSampler(
        native,
        config,
        chosen,
        Aggregates(config.max_aggregate_keys),
        clock,
        tenant_key,
        MAX_TENANTS,
    )
    all_canonical = True  # since the last drain
    for n, payload in enumerate(payloads(batch, changes[: len(batch)])):
        clock.now += steps[n]
        all_canonical = all_canonical and canonical(payload)
        try:
            expected = python_path(twin, payload, headers[n])
        except DecodeError:
            with pytest.raises(DecodeError):
                compiled_path(compiled, payload, headers[n])
            continue
        outcome, too_large, forwarded = compiled_path(compiled, payload, headers[n])
        want, want_too_large, want_forwarded = expected
        assert too_large == want_too_large
        assert (outcome.received, outcome.kept, outcome.rejected, outcome.recalled) == (
            want.received,
            want.kept,
            want.rejected,
            want.recalled,
        )
        assert outcome.kept_by_reason == want.kept_by_reason
        assert outcome.dropped_by_reason == want.dropped_by_reason
        assert (
            outcome.received_by_tenant,
            outcome.kept_by_tenant,
            outcome.tenant_overflow_records,
        ) == (want.received_by_tenant, want.kept_by_tenant, want.tenant_overflow_records)
        if tenant_key is None:
            assert not outcome.received_by_tenant and not outcome.tenant_overflow_records
        assert (outcome.cleared_trace_ids, outcome.cleared_span_ids) == (
            want.cleared_trace_ids,
            want.cleared_span_ids,
        )
        assert forwarded == want_forwarded
        assert compiled._anomaly_budget == twin._anomaly_budget
        assert compiled._bursting == twin._bursting
        assert compiled._template_bursting == twin._template_bursting
        if twin._error_context is not None:
            assert compiled._error_context.bytes_held == twin._error_context.bytes_held
        if n + 1 == drain_after:
            assert drained(compiled._aggregates, all_canonical) == drained(
                twin._aggregates, all_canonical
            )
            all_canonical = True
    assert drained(compiled._aggregates, all_canonical) == drained(twin._aggregates, all_canonical)
