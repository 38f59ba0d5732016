"""The embedded analysis loop learning from real traffic through the real gRPC receiver.

Scenario: steady Zipf-skewed noise until the policy converges on an 80 % reduction; then a new
ERROR pattern, a new INFO pattern and a 10x spike of one INFO pattern. The new patterns must be
kept whole from their first record, the spike from its first second, and adjusted counts must
still add up to what was sent.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.support.running_service import make_settings
from tests.support.traffic import ERROR, NOISE, Pattern, TrafficSender, attributes

SPIKED = NOISE[3]
TARGET_REDUCTION = 0.8


@pytest.fixture
def learning_service(sink, start_service):
    settings = make_settings(
        sink.endpoint,
        **{
            "analysis.interval_s": 1.0,
            "analysis.target_reduction": TARGET_REDUCTION,
            "analysis.min_examples_per_interval": 2,
            "analysis.anomaly_cooldown_s": 30.0,
            "sampler.report_interval_s": 0.25,
            "sampler.burst_factor": 3.0,
        },
    )
    return start_service(settings)


def kept_by(records, phase: str) -> Counter:
    counts: Counter = Counter()
    for _, record in records:
        values = attributes(record)
        if values["scenario.phase"] == phase:
            counts[values["scenario.pattern"], values["scenario.second"]] += 1
    return counts


def test_learns_target_then_keeps_new_patterns_and_spikes(learning_service, sink):
    sender = TrafficSender(learning_service.endpoint)
    sender.run(NOISE, seconds=6.0, tag="learn")
    learned = learning_service.service.sampler.policy
    assert learned.learned and learned.version >= 2
    assert all(
        learned.rule_for(pid, 9).reason in ("budget", "rare") for pid in learned.pattern_rules
    )

    fresh_error = Pattern("fresh-error", "payment provider {n} returned HTTP 502", 20, ERROR)
    fresh_info = Pattern("fresh-info", "feature flag {n} evaluated for beta cohort", 20)
    spike = Pattern(SPIKED.name, SPIKED.body, SPIKED.per_second * 10)
    incident = [*(p for p in NOISE if p is not SPIKED), spike, fresh_error, fresh_info]
    sender.run(incident, seconds=3.0, tag="incident")
    learning_service.stop()
    sender.close()

    records = sink.records()
    learn_kept = kept_by(records, "learn")
    incident_kept = kept_by(records, "incident")

    # Converged: over the last learning seconds the reduction is near the target.
    last_seconds = sorted({s for (tag, _, s) in sender.sent if tag == "learn"})[-3:]
    sent = sum(n for (tag, _, s), n in sender.sent.items() if tag == "learn" and s in last_seconds)
    kept = sum(n for (_, s), n in learn_kept.items() if s in last_seconds)
    assert 1 - kept / sent == pytest.approx(TARGET_REDUCTION, abs=0.08), (kept, sent)

    def sent_of(name):
        return sum(n for (tag, p, _), n in sender.sent.items() if tag == "incident" and p == name)

    def kept_of(name):
        return sum(n for (p, _), n in incident_kept.items() if p == name)

    # New patterns: whole from their first record.
    assert kept_of("fresh-error") == sent_of("fresh-error")
    assert kept_of("fresh-info") == sent_of("fresh-info")
    # The spike: the burst detector keeps most of its first second, the analyzer the rest.
    spike_seconds = sorted(
        {s for (tag, p, s) in sender.sent if tag == "incident" and p == spike.name}
    )
    first = spike_seconds[0]
    first_sent = sender.sent["incident", spike.name, first]
    assert incident_kept[spike.name, first] >= 0.6 * first_sent
    later_sent = sum(sender.sent["incident", spike.name, s] for s in spike_seconds[1:])
    later_kept = sum(incident_kept[spike.name, s] for s in spike_seconds[1:])
    assert later_kept >= 0.9 * later_sent

    reasons = Counter(
        attributes(r)["lipservice.reason"]
        for _, r in records
        if attributes(r)["scenario.pattern"] in (spike.name, "fresh-info")
        and attributes(r)["scenario.phase"] == "incident"
    )
    assert reasons["anomaly/new_pattern"] > 0
    assert reasons["anomaly/burst"] + reasons["anomaly/spike"] > 0

    # Volumes rebuilt from adjusted counts match what was sent: overall within 6 %, and per
    # pattern within 30 % (a few hundred kept records each: sampling noise of several %).
    rebuilt: Counter = Counter()
    for _, record in records:
        values = attributes(record)
        rebuilt[values["scenario.pattern"]] += values["sampling.adjusted_count"]
    sent_by_pattern: Counter = Counter()
    for (_, name, _), n in sender.sent.items():
        sent_by_pattern[name] += n
    assert sum(rebuilt.values()) == pytest.approx(sum(sent_by_pattern.values()), rel=0.06)
    for pattern in NOISE:
        assert rebuilt[pattern.name] == pytest.approx(sent_by_pattern[pattern.name], rel=0.3)


def test_policy_file_edits_reach_an_embedded_analysis(sink, start_service, tmp_path):
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("mode: enforce\n")
    settings = make_settings(
        sink.endpoint,
        **{
            "policy.file": str(policy_file),
            "policy.reload_interval_s": 0.1,
            "analysis.interval_s": 0.5,
            "sampler.report_interval_s": 0.2,
        },
    )
    running = start_service(settings)
    sender = TrafficSender(running.endpoint)
    sender.run(NOISE, seconds=1.5, tag="learn")
    assert running.service.sampler.policy.learned
    policy_file.write_text(
        "mode: shadow\nexemptions:\n  - name: audit\n    attribute: audit\n    equals: 'true'\n"
    )
    deadline = time.monotonic() + 10
    while running.service.sampler.policy.mode != "shadow":
        assert time.monotonic() < deadline, "the edited file never reached the sampler"
        time.sleep(0.05)
    policy = running.service.sampler.policy
    assert policy.learned and policy.pattern_rules, "learned rules stay under the new base"
    assert [e.name for e in policy.exemptions] == ["audit"]
    sender.close()
