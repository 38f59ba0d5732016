"""Tenants in the sampler: part of the pattern id and the counting key, capped per process.

Run with the implementation tests/support/samplers.py picks (compiled, or the Python twin
under LIPSERVICE_SAMPLER__IMPLEMENTATION=python); test_differential.py holds the two equal.
"""

from __future__ import annotations

from dataclasses import replace

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from lipservice_otel.policy.document import policy_from_document
from lipservice_otel.sampling.aggregates import Aggregates
from lipservice_otel.sampling.annotation import ATTR_PATTERN_ID
from lipservice_otel.sampling.config import SamplerConfig
from lipservice_otel.sampling.implementation import build_sampler
from lipservice_otel.sampling.tenant import DEFAULT_TENANT, OTHER_TENANT, TenantKey
from lipservice_otel.text.signature import pattern_id, template_of_text
from tests.support.samplers import implementation

INFO = 9
BODY = "cart 12 checked out"
HEADER = TenantKey("header", "x-scope-orgid")
RESOURCE = TenantKey("resource", "k8s.namespace.name")


def request_of(resources: list[tuple[str | None, int]]) -> ExportLogsServiceRequest:
    """One ResourceLogs per (namespace attribute or None, records), all of service `shop`."""
    request = ExportLogsServiceRequest()
    for namespace, records in resources:
        resource_logs = request.resource_logs.add()
        resource_logs.resource.attributes.add(key="service.name").value.string_value = "shop"
        if namespace is not None:
            attribute = resource_logs.resource.attributes.add(key="k8s.namespace.name")
            attribute.value.string_value = namespace
        scope = resource_logs.scope_logs.add()
        for n in range(records):
            record = scope.log_records.add()
            record.body.string_value = BODY
            record.severity_number = INFO
            record.time_unix_nano = 1_700_000_000_000_000_000 + n
    return request


def sampler_for(tenant_key, max_tenants=100, document=None):
    aggregates = Aggregates(1000)
    config = replace(SamplerConfig(), implementation=implementation())
    policy = policy_from_document(document or {"default_rate": 1.0})
    sampler = build_sampler(
        config, policy, aggregates, tenant_key=tenant_key, max_tenants=max_tenants
    )
    return sampler, aggregates


def forwarded_pattern_ids(request: ExportLogsServiceRequest) -> set[str]:
    return {
        kv.value.string_value
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
        for kv in record.attributes
        if kv.key == ATTR_PATTERN_ID
    }


def by_tenant(aggregates: Aggregates) -> dict[str, tuple[str, int]]:
    return {c.tenant: (c.pattern_id, c.received) for c in aggregates.drain().counts}


def test_pattern_ids_hash_the_tenant_only_when_there_is_one():
    template = template_of_text(BODY)
    assert pattern_id("shop", template, "") == pattern_id("shop", template)
    assert pattern_id("shop", template, "team-a") != pattern_id("shop", template, "team-b")
    assert pattern_id("shop", template, "team-a") != pattern_id("shop", template)


def test_two_header_tenants_get_their_own_ids_and_counts():
    sampler, aggregates = sampler_for(HEADER)
    first, second = request_of([(None, 3)]), request_of([(None, 5)])
    outcome_a = sampler.sample(first, "team-a")
    outcome_b = sampler.sample(second, "team-b")
    template = template_of_text(BODY)
    id_a, id_b = pattern_id("shop", template, "team-a"), pattern_id("shop", template, "team-b")
    assert forwarded_pattern_ids(first) == {id_a}
    assert forwarded_pattern_ids(second) == {id_b}
    assert by_tenant(aggregates) == {"team-a": (id_a, 3), "team-b": (id_b, 5)}
    assert (outcome_a.received_by_tenant, outcome_a.kept_by_tenant) == ({"team-a": 3},) * 2
    assert outcome_b.received_by_tenant == {"team-b": 5}


def test_resource_tenants_are_read_per_resource():
    sampler, aggregates = sampler_for(RESOURCE, document={"default_rate": 0.0})
    outcome = sampler.sample(request_of([("team-a", 2), ("team-b", 4), (None, 1), ("", 1)]))
    counts = by_tenant(aggregates)
    assert {tenant: received for tenant, (_, received) in counts.items()} == {
        "team-a": 2,
        "team-b": 4,
        DEFAULT_TENANT: 2,  # without the attribute, or with it empty
    }
    assert len({pid for pid, _ in counts.values()}) == 3
    assert outcome.received_by_tenant == {"team-a": 2, "team-b": 4, DEFAULT_TENANT: 2}
    assert sum(outcome.kept_by_tenant.values()) == 0


def test_tenants_past_the_cap_count_as_other():
    sampler, aggregates = sampler_for(HEADER, max_tenants=2)
    overflow = [
        sampler.sample(request_of([(None, 2)]), name).tenant_overflow_records
        for name in ("team-a", "team-b", "team-c", "team-a", "team-d")
    ]
    assert overflow == [0, 0, 2, 0, 2]
    counts = by_tenant(aggregates)
    assert {tenant: received for tenant, (_, received) in counts.items()} == {
        "team-a": 4,
        "team-b": 2,
        OTHER_TENANT: 4,
    }
    # Records without a tenant are not held back by the cap.
    assert sampler.sample(request_of([(None, 1)]), None).tenant_overflow_records == 0
    assert set(by_tenant(aggregates)) == {DEFAULT_TENANT}


def test_without_a_tenant_key_nothing_is_counted_by_tenant():
    sampler, aggregates = sampler_for(None)
    outcome = sampler.sample(request_of([("team-a", 2)]), "team-b")
    assert not outcome.received_by_tenant and not outcome.tenant_overflow_records
    assert by_tenant(aggregates) == {"": (pattern_id("shop", template_of_text(BODY)), 2)}


def test_a_tenant_token_wins_over_header_and_resource():
    sampler, aggregates = sampler_for(HEADER)
    outcome = sampler.sample(request_of([(None, 2)]), "team-b", "team-a")
    assert outcome.received_by_tenant == {"team-a": 2}
    sampler, aggregates = sampler_for(RESOURCE)
    outcome = sampler.sample(request_of([("team-b", 2), (None, 1)]), None, "team-a")
    assert outcome.received_by_tenant == {"team-a": 3}
    assert set(by_tenant(aggregates)) == {"team-a"}
