"""A merged pattern's members' own rules: precedence, the wire format, history trimming."""

from __future__ import annotations

from lipservice_otel.policy.codec import policy_from_bytes, policy_to_bytes, policy_to_proto
from lipservice_otel.policy.model import PatternRule, Policy
from lipservice_otel.store import clear_rules, without_rules

POLICY = Policy(
    version=4,
    learned=True,
    pattern_rules={"merged": PatternRule(0.2, "budget", 120.0)},
    pattern_aliases={"upload": "merged", "download": "merged"},
    signature_rules={
        "upload": PatternRule(1.0, "anomaly/spike", 20.0),
        "download": PatternRule(0.2, "budget", 100.0),
    },
)


def test_a_members_rule_outranks_its_pattern_and_keeps_the_merged_id():
    boosted = POLICY.rule_for("upload", 9)
    assert (boosted.rate, boosted.reason, boosted.pattern_id) == (1.0, "anomaly/spike", "merged")
    assert (boosted.baseline_per_second, boosted.signature_baseline_per_second) == (120.0, 20.0)
    sampled = POLICY.rule_for("download", 9)
    assert (sampled.rate, sampled.signature_baseline_per_second) == (0.2, 100.0)
    assert POLICY.rule_for("download", 17).reason == "severity"
    # A signature the analysis does not know apart from its pattern: the pattern's rule only.
    other = POLICY.rule_for("merged", 9)
    assert (other.rate, other.signature_baseline_per_second) == (0.2, 0.0)


def test_member_rules_survive_the_wire_and_go_with_the_table_in_old_history():
    assert policy_from_bytes(policy_to_bytes(POLICY)) == POLICY
    assert without_rules(POLICY).signature_rules == {}
    message = policy_to_proto(POLICY)
    assert clear_rules(message) and not message.signature_rules
