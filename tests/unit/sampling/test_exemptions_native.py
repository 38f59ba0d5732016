"""Exemptions in the compiled sampler, on hand-built requests against the Python one.

An exemption keeps a record whatever its rate: equals on a record attribute, a resource
attribute or the body, as sampler.py reads them (an int, bool or double attribute as
str(value).lower(), any other kind as no value, the first attribute of a key only, a body
that is no string as ""); a regex through the compiled pattern's own search. The engine takes
these requests whole: none goes to the Python sampler, and a regex is one counted call.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from lipservice_otel.policy.model import Exemption, Policy
from lipservice_otel.sampling.aggregates import Aggregates
from lipservice_otel.sampling.annotation import ATTR_ADJUSTED_COUNT, ATTR_REASON, ATTR_WOULD_KEEP
from lipservice_otel.sampling.compiled import CompiledSampler
from lipservice_otel.sampling.config import SamplerConfig
from lipservice_otel.sampling.sampler import Sampler
from tests.support.native import native_module, sample_on_both

INFO = 9
DROP_ALL = Policy(version=1, default_rate=0.0)
CONFIG = SamplerConfig(anomaly_keep_per_second=1)


def value(v) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    return AnyValue(string_value=v)


def request(*resources: tuple[dict, list[tuple[object, list[tuple[str, object]]]]]) -> bytes:
    """Per resource: its attributes, then (body, [(key, value), ...]) per record."""
    out = ExportLogsServiceRequest()
    n = 0
    for resource_attributes, records in resources:
        resource_logs = out.resource_logs.add()
        for key, v in resource_attributes.items():
            resource_logs.resource.attributes.add(key=key).value.CopyFrom(value(v))
        scope_logs = resource_logs.scope_logs.add()
        for body, attributes in records:
            n += 1
            record = scope_logs.log_records.add(time_unix_nano=1_000_000 + n, severity_number=INFO)
            record.body.CopyFrom(body if isinstance(body, AnyValue) else value(body))
            for key, v in attributes:
                record.attributes.add(key=key).value.CopyFrom(value(v))
    return out.SerializeToString()


def sample_both(policy: Policy, *payloads: bytes, config: SamplerConfig = CONFIG):
    """Both samplers on the payloads in turn; the compiled one must take each itself. The
    last outcome, forwarded request and the compiled sampler's Python calls."""
    python = Sampler(config, policy, Aggregates(1000), lambda: 1000.0)
    compiled = CompiledSampler(native_module(), config, policy, Aggregates(1000), lambda: 1000.0)
    for payload in payloads:
        want, outcome, expected, got = sample_on_both(python, compiled, payload)
        assert got == expected
        assert (outcome.received, outcome.kept) == (want.received, want.kept)
        assert outcome.kept_by_reason == want.kept_by_reason
        assert outcome.dropped_by_reason == want.dropped_by_reason
        assert compiled._anomaly_budget == python._anomaly_budget
    return outcome, expected, compiled.to_python_since()


def kept(forwarded: ExportLogsServiceRequest) -> list[tuple]:
    """(body, adjusted count, reason) per forwarded record."""
    out = []
    for resource_logs in forwarded.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                attributes = {kv.key: kv.value for kv in record.attributes}
                out.append(
                    (
                        record.body.string_value,
                        attributes[ATTR_ADJUSTED_COUNT].double_value,
                        attributes[ATTR_REASON].string_value,
                    )
                )
    return out


def test_equals_on_a_record_attribute_keeps_only_its_records():
    policy = replace(DROP_ALL, exemptions=(Exemption("vip", "attribute", "user", equals="ann"),))
    payload = request(
        ({"service.name": "api"}, [("a", [("user", "ann")]), ("b", [("user", "bob")]), ("c", [])])
    )
    outcome, forwarded, calls = sample_both(policy, payload)
    assert kept(forwarded) == [("a", 1.0, "exempt/vip")]
    assert outcome.kept_by_reason == Counter({"exempt/vip": 1})
    assert outcome.dropped_by_reason == Counter({"default": 2})
    assert calls == 0


def test_values_that_are_no_string_compare_as_python_writes_them():
    exemptions = (
        Exemption("int", "attribute", "status", equals="503"),
        Exemption("bool", "attribute", "retried", equals="true"),
        Exemption("double", "attribute", "ratio", equals="1.5"),
        Exemption("big", "attribute", "ratio", equals="1e+16"),
        Exemption("bytes", "attribute", "blob", equals=""),
        Exemption("negative", "attribute", "status", equals="-7"),
    )
    payload = request(
        (
            {},
            [
                ("int", [("status", 503)]),
                ("int-other", [("status", 500)]),
                ("bool", [("retried", True)]),
                ("bool-false", [("retried", False)]),
                ("double", [("ratio", 1.5)]),
                ("big", [("ratio", 1e16)]),
                ("bytes", [("blob", b"")]),
                ("negative", [("status", -7)]),
                # Only the first attribute of a key is read: a bytes value, so no value.
                ("first-only", [("blob", b"x"), ("status", 1), ("blob", "")]),
            ],
        )
    )
    outcome, forwarded, _ = sample_both(replace(DROP_ALL, exemptions=exemptions), payload)
    assert kept(forwarded) == [
        ("int", 1.0, "exempt/int"),
        ("bool", 1.0, "exempt/bool"),
        ("double", 1.0, "exempt/double"),
        ("big", 1.0, "exempt/big"),
        ("negative", 1.0, "exempt/negative"),
    ]
    assert outcome.dropped_by_reason == Counter({"default": 4})


def test_a_resource_exemption_keeps_every_record_of_that_resource():
    policy = replace(
        DROP_ALL,
        exemptions=(
            Exemption("db", "resource", "service.name", equals="db"),
            Exemption("host", "resource", "host", pattern=re.compile("^9")),
        ),
    )
    payload = request(
        ({"service.name": "db"}, [("a", []), ("b", [("user", "x")])]),
        ({"service.name": "api"}, [("c", [])]),
        ({"service.name": "api", "host": 91}, [("d", []), ("e", [])]),
    )
    outcome, forwarded, calls = sample_both(policy, payload)
    assert kept(forwarded) == [
        ("a", 1.0, "exempt/db"),
        ("b", 1.0, "exempt/db"),
        ("d", 1.0, "exempt/host"),
        ("e", 1.0, "exempt/host"),
    ]
    assert outcome.dropped_by_reason == Counter({"default": 1})
    # One search: the first resource is the first exemption's, the second has no host.
    assert calls == 1


def test_body_exemptions_read_a_structured_body_as_empty():
    structured = AnyValue()
    structured.kvlist_value.values.add(key="event").value.string_value = "payment failed"
    policy = replace(
        DROP_ALL,
        exemptions=(
            Exemption("failed", "body", "", pattern=re.compile("(?i)fail")),
            Exemption("empty", "body", "", equals=""),
        ),
    )
    payload = request(({}, [("Payment FAILED", []), ("ok", []), (structured, []), ("", [])]))
    outcome, forwarded, calls = sample_both(policy, payload)
    assert kept(forwarded) == [
        ("Payment FAILED", 1.0, "exempt/failed"),
        ("", 1.0, "exempt/empty"),
        ("", 1.0, "exempt/empty"),
    ]
    assert outcome.dropped_by_reason == Counter({"default": 1})
    # A search per record, and the structured body's template.
    assert calls == 5


def test_the_first_exemption_in_policy_order_names_the_reason():
    policy = replace(
        DROP_ALL,
        exemptions=(
            Exemption("present", "attribute", "user"),  # presence alone
            Exemption("ann", "attribute", "user", equals="ann"),
        ),
    )
    _, forwarded, _ = sample_both(policy, request(({}, [("a", [("user", "ann")])])))
    assert kept(forwarded) == [("a", 1.0, "exempt/present")]


def test_an_exempt_record_of_a_new_pattern_takes_no_anomaly_budget():
    """A learned policy keeps a new pattern from a budget of one a second; the exempt record
    comes first and leaves that budget to the next new pattern."""
    learned = Policy(
        version=1,
        default_rate=0.0,
        learned=True,
        exemptions=(Exemption("vip", "attribute", "user", equals="ann"),),
    )
    payload = request(({}, [("first pattern", [("user", "ann")]), ("second pattern", [])]))
    _, forwarded, _ = sample_both(learned, payload)
    assert kept(forwarded) == [
        ("first pattern", 1.0, "exempt/vip"),
        ("second pattern", 1.0, "anomaly/new_pattern"),
    ]


def test_shadow_mode_forwards_an_exempt_record_as_one_enforce_would_keep():
    shadow = replace(
        DROP_ALL, mode="shadow", exemptions=(Exemption("vip", "attribute", "user", equals="ann"),)
    )
    payload = request(({}, [("a", [("user", "ann")]), ("b", [])]))
    outcome, forwarded, _ = sample_both(shadow, payload)
    verdicts = [
        (r.body.string_value, {kv.key: kv.value for kv in r.attributes}[ATTR_WOULD_KEEP].bool_value)
        for r in forwarded.resource_logs[0].scope_logs[0].log_records
    ]
    assert verdicts == [("a", True), ("b", False)]
    assert outcome.kept_by_reason == Counter({"exempt/vip": 1, "default": 1})


def test_a_policy_change_hands_the_engine_its_exemptions():
    payload = request(({}, [("a", [("user", "ann")])]))
    python = Sampler(CONFIG, DROP_ALL, Aggregates(1000), lambda: 1000.0)
    compiled = CompiledSampler(native_module(), CONFIG, DROP_ALL, Aggregates(1000), lambda: 1000.0)
    exempting = replace(DROP_ALL, exemptions=(Exemption("vip", "attribute", "user", equals="ann"),))
    for policy, reasons in ((exempting, {"exempt/vip": 1}), (DROP_ALL, {})):
        python.set_policy(policy)
        compiled.set_policy(policy)
        outcome, _ = compiled.sample_walked(compiled.walk(payload, 1 << 20))
        assert (
            outcome.kept_by_reason
            == python.sample(ExportLogsServiceRequest.FromString(payload)).kept_by_reason
        )
        assert outcome.kept_by_reason == Counter(reasons)
