"""The decision function: order, determinism, thresholds, and policy documents."""

from __future__ import annotations

import pytest

from lipservice_otel.policy.document import PolicyError, policy_from_document
from lipservice_otel.policy.model import RANDOMNESS_SPAN, decide, severity_bucket, threshold_for

ERROR, WARN, INFO, DEBUG = 17, 13, 9, 5


def test_decision_order_and_reasons():
    policy = policy_from_document(
        {
            "default_rate": 0.5,
            "severity_rates": {"debug": 0.0, "info": 0.25},
            "pattern_rates": {"p-noisy": 0.01, "p-debug-kept": 1.0},
            "exemptions": [{"name": "audit", "attribute": "audit", "equals": "true"}],
        }
    )
    exemption = policy.exemptions[0]
    never = RANDOMNESS_SPAN - 1  # the largest draw: kept only at rate 1
    assert decide(policy, "p-noisy", ERROR, never).reason == "severity"
    assert decide(policy, "p-noisy", ERROR, never).keep
    assert decide(policy, "p-noisy", INFO, never, exemption).reason == "exempt/audit"
    assert decide(policy, "p-noisy", INFO, 0).reason == "pattern"
    assert decide(policy, "p-noisy", INFO, 0).rate == 0.01
    assert decide(policy, "p-debug-kept", DEBUG, never).keep
    assert decide(policy, "p-other", DEBUG, 0).reason == "severity_default"
    assert not decide(policy, "p-other", DEBUG, 0).keep  # rate 0 keeps nothing
    assert decide(policy, "p-other", INFO, 0).rate == 0.25
    assert decide(policy, "p-other", WARN, 0).reason == "default"
    assert decide(policy, "p-other", WARN, 0).rate == 0.5


def test_threshold_is_a_fraction_of_the_randomness_span():
    assert threshold_for(1.0) == RANDOMNESS_SPAN
    assert threshold_for(0.0) == 0
    policy = policy_from_document({"default_rate": 0.25})
    draws = [i * RANDOMNESS_SPAN // 1000 for i in range(1000)]
    kept = sum(decide(policy, "p", INFO, r).keep for r in draws)
    assert kept == 250


def test_same_randomness_same_decision():
    policy = policy_from_document({"default_rate": 0.3})
    for r in range(0, RANDOMNESS_SPAN, RANDOMNESS_SPAN // 97):
        assert decide(policy, "a", INFO, r) == decide(policy, "a", INFO, r)


@pytest.mark.parametrize(
    ("number", "bucket"),
    [
        (0, "unspecified"),
        (1, "trace"),
        (5, "debug"),
        (9, "info"),
        (12, "info"),
        (13, "warn"),
        (17, "error"),
        (20, "error"),
        (21, "fatal"),
        (24, "fatal"),
    ],
)
def test_severity_buckets(number, bucket):
    assert severity_bucket(number) == bucket


def test_severity_floor_by_name_or_number():
    assert policy_from_document({"severity_floor": "warn"}).severity_floor == 13
    assert policy_from_document({"severity_floor": 21}).severity_floor == 21
    assert decide(policy_from_document({"severity_floor": "warn", "default_rate": 0}), "p", WARN, 1)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"default_rate": -0.1}, "default_rate: must be a number from 0 to 1"),
        ({"default_rate": True}, "default_rate"),
        ({"severity_rates": {"loud": 0.5}}, "severity_rates.loud: must be one of"),
        ({"severity_rates": {"info": 5}}, "severity_rates.info"),
        ({"pattern_rates": {"abc": "half"}}, "pattern_rates.abc"),
        ({"severity_floor": "severe"}, "severity_floor: must be one of"),
        ({"mode": "dry-run"}, "mode: must be one of enforce, shadow"),
        ({"rates": {}}, "rates: unknown key"),
        ({"exemptions": {"a": 1}}, "exemptions: expected a list"),
        ({"exemptions": [{"attribute": "a", "resource": "b"}]}, "exemptions[0]: set exactly one"),
        ({"exemptions": [{"attribute": "a", "equals": "x", "matches": "y"}]}, "cannot define both"),
        ({"exemptions": [{"body": True}]}, "exemptions[0]: a body exemption needs"),
        ({"exemptions": [{"body": True, "matches": "("}]}, "exemptions[0].matches: invalid"),
        ({"exemptions": [{"attribute": "a", "when": 1}]}, "exemptions[0].when: unknown key"),
    ],
)
def test_invalid_documents_name_the_key(document, message):
    with pytest.raises(PolicyError) as raised:
        policy_from_document(document)
    assert message in str(raised.value)
