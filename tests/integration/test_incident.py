"""A scripted incident through the running service: one mid-volume pattern bursts 10x.

Steady Zipf-skewed noise (about 2,000 records a second) and a mid-volume pattern at 150/s until
the policy converges on a 90 % reduction; then the pattern jumps to 1,500/s for four seconds
and falls back. During the burst its kept share must be at least twice what it was before,
from its first second (the receiver's detector) and for the analysis' cooldown after it (the
spike boost), while the run as a whole keeps the reduction target within what the anomaly
budget allows.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.running_service import make_settings
from tests.support.traffic import NOISE, Pattern, TrafficSender, attributes

TARGET_REDUCTION = 0.9
COOLDOWN_S = 6.0
MID = Pattern("mid", "replica lag check on shard {n} within bounds", 150)
BURST = Pattern(MID.name, MID.body, MID.per_second * 10)
PHASES = ("before", "burst", "after")


@pytest.fixture
def incident_service(sink, start_service):
    settings = make_settings(
        sink.endpoint,
        **{
            "analysis.interval_s": 1.0,
            "analysis.target_reduction": TARGET_REDUCTION,
            "analysis.min_examples_per_interval": 2,
            "analysis.anomaly_cooldown_s": COOLDOWN_S,
            "sampler.report_interval_s": 0.25,
        },
    )
    return start_service(settings)


def test_a_burst_keeps_more_detail_and_the_run_keeps_its_target(incident_service, sink):
    sender = TrafficSender(incident_service.endpoint)
    sender.run([*NOISE, MID], seconds=6.0, tag="learn")
    assert incident_service.service.sampler.policy.learned
    sender.run([*NOISE, MID], seconds=3.0, tag="before")
    sender.run([*NOISE, BURST], seconds=4.0, tag="burst")
    sender.run([*NOISE, MID], seconds=7.0, tag="after")
    incident_service.stop()
    sender.close()

    kept: Counter = Counter()  # (phase, pattern, second) -> records
    by_anomaly: Counter = Counter()  # (phase, pattern) -> records kept as anomalies
    for _, record in sink.records():
        values = attributes(record)
        key = (values["scenario.phase"], values["scenario.pattern"], values["scenario.second"])
        kept[key] += 1
        if values["lipservice.reason"].startswith("anomaly/"):
            by_anomaly[key[:2]] += 1

    def total(counts: Counter, phase: str, pattern: str | None = None, seconds=None) -> int:
        return sum(
            n
            for (p, name, s), n in counts.items()
            if p == phase
            and (pattern is None or name == pattern)
            and (seconds is None or s in seconds)
        )

    def share(phase: str, seconds=None) -> float:
        return total(kept, phase, MID.name, seconds) / total(sender.sent, phase, MID.name, seconds)

    burst_seconds = sorted({s for (p, n, s) in sender.sent if p == "burst" and n == MID.name})
    after_seconds = sorted({s for (p, n, s) in sender.sent if p == "after" and n == MID.name})
    before, during = share("before"), share("burst")
    first_second = share("burst", burst_seconds[:1])
    # Boosted about a second into the burst, for COOLDOWN_S: its first two seconds after are
    # still held, those from the fifth on are sampled again.
    cooldown = share("after", after_seconds[:2])
    late = share("after", after_seconds[5:])
    sent = sum(total(sender.sent, p) for p in PHASES)
    forwarded = sum(total(kept, p) for p in PHASES)
    anomalies = sum(by_anomaly.values()) - sum(
        n for (p, _), n in by_anomaly.items() if p == "learn"
    )
    reduction = 1 - forwarded / sent
    print(
        f"\nincident: mid kept share before {before:.3f}, burst {during:.3f} (first second "
        f"{first_second:.3f}), cooldown {cooldown:.3f}, after {late:.3f}; run reduction "
        f"{reduction:.3f} ({forwarded}/{sent} kept, {anomalies} as anomalies), without the "
        f"anomalies {1 - (forwarded - anomalies) / sent:.3f}"
    )

    # Sampled before: the burst gets at least twice the share, from its first second on.
    assert before < 0.5
    # Most of it, not only twice as much: the receiver keeps the burst whole from its first
    # second and the analysis boost follows (0.94 on an idle machine, 0.88 seen under load).
    assert during >= 2 * before and during >= 0.75
    assert first_second >= 2 * before
    # The analysis holds the boost for its cooldown after the burst, then samples again.
    assert cooldown >= 0.8
    assert late < 0.5 * cooldown
    # The steady noise is not taken for bursts: anomaly keeps are the mid pattern's.
    noise_anomalies = sum(n for (p, name), n in by_anomaly.items() if name != MID.name)
    assert noise_anomalies <= 0.02 * forwarded
    # The run: the target holds but for what the anomalies kept, and those are bounded by the
    # burst itself plus the cooldown at the pattern's normal volume.
    assert 1 - (forwarded - anomalies) / sent >= TARGET_REDUCTION - 0.05
    burst_and_cooldown = total(sender.sent, "burst", MID.name) + MID.per_second * (COOLDOWN_S + 1)
    assert anomalies <= burst_and_cooldown + noise_anomalies
