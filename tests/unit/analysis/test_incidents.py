"""Incidents in the analysis: a template spiking inside a merged pattern is boosted alone, and
the budget never hands a pattern that is getting louder a smaller rate."""

from __future__ import annotations

from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.learn import Interval, learn
from lipservice_otel.analysis.llm.advisor import STATUS_DISABLED, Consultation
from lipservice_otel.analysis.plan import Planning, plan
from lipservice_otel.analysis.rules import REASON_BUDGET
from lipservice_otel.analysis.state import AnalysisState, PatternState
from lipservice_otel.policy.model import Policy
from lipservice_otel.policy.reasons import BOOST_REASONS, KIND_SPIKE

INTERVAL_S = 10.0
COOLDOWN_S = 60.0
SPIKE = BOOST_REASONS[KIND_SPIKE]


class Analysis:
    """learn + plan cycles over hand-made per-interval counts (records per pattern)."""

    def __init__(self, templates: dict[str, str], aliases: dict[str, str] | None = None):
        self.config = AnalysisConfig(
            interval_s=INTERVAL_S, anomaly_cooldown_s=COOLDOWN_S, merge_patterns=False
        )
        self.base = Policy()
        self.planning = Planning.of(self.config, self.base)
        self.state = AnalysisState()
        for pid, template in templates.items():
            self.state.patterns[pid] = PatternState(pid, "svc", template, 0.0)
        self.aliases = aliases or {}
        self.policy: Policy | None = None
        self.now = 0.0

    def cycle(self, counts: dict[str, int]):
        self.now += INTERVAL_S
        pending = Interval(counts={pid: {"info": n} for pid, n in counts.items()}, reports=1)
        learned = learn(
            self.state, pending, self.config, self.planning.floor_buckets, self.now, INTERVAL_S
        )
        # Merging is patterns.py's business: the groups are given here.
        self.state.aliases = dict(self.aliases)
        policy, _ = plan(
            self.state,
            self.planning,
            self.base,
            self.policy,
            Consultation(STATUS_DISABLED),
            len(learned.anomalies),
            self.now,
            True,
        )
        self.policy = policy
        return learned.anomalies


def test_a_template_spiking_inside_a_merged_pattern_is_boosted_alone_for_the_cooldown():
    analysis = Analysis(
        {"up": "upload <*> done", "down": "download <*> done", "del": "delete <*> done"},
        aliases={"down": "up", "del": "up"},
    )
    steady = {"up": 4000, "down": 4000, "del": 1000, "loud": 40_000}
    analysis.state.patterns["loud"] = PatternState("loud", "svc", "cache <*>", 0.0)
    for _ in range(5):
        analysis.cycle(steady)
    policy = analysis.policy
    assert policy.signature_rules["del"].baseline_per_second == 100.0
    assert policy.rule_for("del", 9).signature_baseline_per_second == 100.0
    before = policy.pattern_rules["up"].rate
    assert before < 0.5

    # `del` jumps 5x: its pattern as a whole only 1.4x, below the spike ratio.
    anomalies = analysis.cycle({**steady, "del": 5000})
    assert [(a.kind, a.pattern_id, a.signature_id) for a in anomalies] == [
        (KIND_SPIKE, "up", "del")
    ]
    policy = analysis.policy
    assert (policy.signature_rules["del"].rate, policy.signature_rules["del"].reason) == (
        1.0,
        SPIKE,
    )
    rule = policy.rule_for("del", 9)
    assert (rule.rate, rule.reason, rule.pattern_id) == (1.0, SPIKE, "up")
    # The rest of the pattern is not kept whole for it, nor given less.
    assert policy.pattern_rules["up"].rate < 1.0
    assert policy.signature_rules["down"].rate == policy.pattern_rules["up"].rate >= before
    assert "templates boosted alone" in policy.summary

    # Held through the cooldown, then sampled with its pattern again.
    for _ in range(int(COOLDOWN_S / INTERVAL_S) - 1):
        analysis.cycle(steady)
        assert analysis.policy.rule_for("del", 9).rate == 1.0
    analysis.cycle(steady)
    analysis.cycle(steady)
    assert analysis.policy.rule_for("del", 9).rate == analysis.policy.pattern_rules["up"].rate < 1


def test_template_boosts_survive_a_snapshot():
    analysis = Analysis({"up": "upload <*> done", "del": "delete <*> done"}, {"del": "up"})
    for _ in range(4):
        analysis.cycle({"up": 4000, "del": 1000})
    analysis.cycle({"up": 4000, "del": 5000})
    assert set(analysis.state.template_boosts) == {"del"}
    restored = AnalysisState.from_bytes(analysis.state.to_bytes())
    assert restored.template_boosts == analysis.state.template_boosts


def test_a_pattern_getting_louder_keeps_its_rate_until_its_level_settles():
    noise = {f"noise{n}": f"noise {n} <*>" for n in range(10)}
    analysis = Analysis({**noise, "mid": "replica <*> lag"})
    steady = {**dict.fromkeys(noise, 2000), "mid": 1500}
    for _ in range(5):
        analysis.cycle(steady)
    before = analysis.policy.pattern_rules["mid"]
    assert before.reason == REASON_BUDGET and before.rate < 1.0
    # Twice as loud: not a spike, but the log weights alone would give it a smaller rate.
    anomalies = analysis.cycle({**steady, "mid": 3000})
    assert not anomalies
    assert "mid" in analysis.state.rising
    held = analysis.policy.pattern_rules["mid"]
    assert held.rate == before.rate
    # Not forever: once the baseline has caught up the budget decides again.
    for _ in range(8):
        analysis.cycle({**steady, "mid": 3000})
    assert "mid" not in analysis.state.rising
    assert analysis.policy.pattern_rules["mid"].rate < before.rate
