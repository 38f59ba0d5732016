"""Policies as control-plane protobuf messages, as the control plane streams and stores them."""

from __future__ import annotations

import re

from lipservice_otel._proto.lipservice.v1 import control_pb2
from lipservice_otel.policy.model import Exemption, PatternRule, Policy


def exemption_to_proto(exemption: Exemption) -> control_pb2.Exemption:
    message = control_pb2.Exemption(name=exemption.name, scope=exemption.scope, key=exemption.key)
    if exemption.equals is not None:
        message.equals = exemption.equals
    if exemption.pattern is not None:
        message.matches = exemption.pattern.pattern
    return message


def exemption_from_proto(message: control_pb2.Exemption) -> Exemption:
    return Exemption(
        name=message.name,
        scope=message.scope,
        key=message.key,
        equals=message.equals if message.HasField("equals") else None,
        pattern=re.compile(message.matches) if message.HasField("matches") else None,
    )


def policy_to_proto(policy: Policy) -> control_pb2.Policy:
    message = control_pb2.Policy(
        version=policy.version,
        mode=policy.mode,
        severity_floor=policy.severity_floor,
        default_rate=policy.default_rate,
        learned=policy.learned,
        generator=policy.generator,
        created_unix_nano=policy.created_unix_nano,
        summary=policy.summary,
    )
    message.severity_rates.update(policy.severity_rates)
    for rules, field in (
        (policy.pattern_rules, message.pattern_rules),
        (policy.signature_rules, message.signature_rules),
    ):
        for pid, rule in rules.items():
            entry = field[pid]
            entry.rate, entry.reason = rule.rate, rule.reason
            entry.baseline_per_second = rule.baseline_per_second
    message.exemptions.extend(exemption_to_proto(e) for e in policy.exemptions)
    message.pattern_aliases.update(policy.pattern_aliases)
    return message


def policy_from_proto(message: control_pb2.Policy) -> Policy:
    return Policy(
        version=message.version,
        mode=message.mode or "enforce",
        severity_floor=message.severity_floor,
        default_rate=message.default_rate,
        severity_rates=dict(message.severity_rates),
        pattern_rules=_rules_from_proto(message.pattern_rules),
        signature_rules=_rules_from_proto(message.signature_rules),
        exemptions=tuple(exemption_from_proto(e) for e in message.exemptions),
        pattern_aliases=dict(message.pattern_aliases),
        learned=message.learned,
        generator=message.generator,
        created_unix_nano=message.created_unix_nano,
        summary=message.summary,
    )


def _rules_from_proto(rules) -> dict[str, PatternRule]:
    return {
        pid: PatternRule(rule.rate, rule.reason, rule.baseline_per_second)
        for pid, rule in rules.items()
    }


def policy_to_bytes(policy: Policy) -> bytes:
    return policy_to_proto(policy).SerializeToString()


def policy_from_bytes(blob: bytes) -> Policy:
    return policy_from_proto(control_pb2.Policy.FromString(blob))
