"""A policy cut to the patterns one receiver reports (control.policy_slices)."""

from __future__ import annotations

from lipservice_otel.policy.model import Exemption, PatternRule, Policy
from lipservice_otel.policy.slice import PolicySlicer

KEEP_AUDIT = Exemption(name="audit", scope="resource", key="service.name", equals="audit")
POLICY = Policy(
    version=9,
    mode="shadow",
    default_rate=0.5,
    severity_rates={"debug": 0.1},
    exemptions=(KEEP_AUDIT,),
    learned=True,
    pattern_rules={
        "login": PatternRule(0.2, "budget", 40.0),
        "cache": PatternRule(0.1, "budget", 90.0),
        "payment": PatternRule(1.0, "rare", 0.5),
    },
    # Two spellings of the login template merged into "login".
    pattern_aliases={"login-by-mail": "login", "login-by-token": "login"},
    signature_rules={
        "login": PatternRule(0.2, "budget", 30.0),
        "login-by-mail": PatternRule(1.0, "anomaly/spike", 8.0),
        "login-by-token": PatternRule(0.2, "budget", 2.0),
    },
)


def test_a_slice_has_the_reported_patterns_rules_and_everything_else_whole():
    sliced = PolicySlicer(POLICY).slice({"cache", "unknown-to-the-analysis"})
    assert dict(sliced.pattern_rules) == {"cache": POLICY.pattern_rules["cache"]}
    assert not sliced.pattern_aliases and not sliced.signature_rules
    # Not per pattern: whole.
    assert (sliced.version, sliced.mode, sliced.default_rate) == (9, "shadow", 0.5)
    assert sliced.severity_rates == {"debug": 0.1} and sliced.exemptions == (KEEP_AUDIT,)
    assert sliced.learned


def test_a_signature_brings_its_merged_pattern_and_all_its_spellings():
    slicer = PolicySlicer(POLICY)
    for reported in ({"login-by-mail"}, {"login"}):  # before and after the alias applied
        sliced = slicer.slice(reported)
        assert dict(sliced.pattern_rules) == {"login": POLICY.pattern_rules["login"]}
        assert dict(sliced.pattern_aliases) == dict(POLICY.pattern_aliases)
        assert dict(sliced.signature_rules) == dict(POLICY.signature_rules)


def test_the_slice_decides_the_reported_records_as_the_whole_policy_does():
    slicer = PolicySlicer(POLICY)
    reported = {"login-by-token", "payment"}
    sliced = slicer.slice(reported)
    for signature in ("login-by-token", "login-by-mail", "login", "payment"):
        for severity in (5, 9, 17):
            assert sliced.rule_for(signature, severity) == POLICY.rule_for(signature, severity)
    # What it did not report is new to it, as a pattern the analysis never saw.
    outside = sliced.rule_for("cache", 9)
    assert (outside.rate, outside.reason, outside.known) == (1.0, "anomaly/new_pattern", False)


def test_covers_says_which_ids_have_a_rule():
    slicer = PolicySlicer(POLICY)
    assert all(slicer.covers(pid) for pid in ("login", "login-by-mail", "cache"))
    assert not slicer.covers("never-seen")
