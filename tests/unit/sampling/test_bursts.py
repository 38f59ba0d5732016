"""The receiver's burst detector on hand-built requests and a hand-turned clock.

A pattern whose count in the current second passes `burst_factor` x its baseline is kept
whole from that record on, through the next second; a template inside a merged pattern is
watched against its own baseline too; the anomaly budget bounds what a burst keeps.
"""

from __future__ import annotations

from collections import Counter

from lipservice_otel.policy.model import PatternRule, Policy
from lipservice_otel.policy.reasons import BOOST_REASONS, KIND_SPIKE, REASON_BURST
from lipservice_otel.sampling.aggregates import Aggregates
from lipservice_otel.sampling.annotation import ATTR_PATTERN_ID, ATTR_REASON
from lipservice_otel.sampling.config import DEFAULT_BURST_FACTOR, SamplerConfig
from lipservice_otel.sampling.sampler import Sampler
from lipservice_otel.text.signature import pattern_id, template_of_text
from tests.support.log_requests import request_with_bodies
from tests.support.samplers import make_sampler

SERVICE = "bad-input"  # what request_with_bodies sends
RATE = 0.1
SPIKE = BOOST_REASONS[KIND_SPIKE]
STEADY = "cache refreshed for tenant {n}"
UPLOAD = "upload finished for user {n}"
DOWNLOAD = "download finished for user {n}"


def pid(body: str) -> str:
    return pattern_id(SERVICE, template_of_text(body.format(n=1)))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sampler_for(policy: Policy, **config) -> tuple[Sampler, Clock]:
    clock = Clock()
    return make_sampler(SamplerConfig(**config), policy, Aggregates(1000), clock), clock


def send_second(sampler: Sampler, clock: Clock, counts: dict[str, int]) -> Counter:
    """`counts` records per body over one second in ten requests; (body, reason) -> kept."""
    kept: Counter = Counter()
    for tick in range(10):
        clock.now = int(clock.now) + tick / 10
        bodies = [
            body.format(n=tick * 1000 + n)
            for body, total in counts.items()
            for n in range(total // 10)
        ]
        request = request_with_bodies(*bodies)
        sampler.sample(request)
        for record in records(request):
            attributes = {kv.key: kv.value.string_value for kv in record.attributes}
            template = template_of_text(record.body.string_value)
            body = next(b for b in counts if template_of_text(b.format(n=1)) == template)
            kept[body, attributes[ATTR_REASON]] += 1
            assert attributes[ATTR_PATTERN_ID]
    clock.now = int(clock.now) + 1
    return kept


def records(request) -> list:
    return [r for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]


def whole(kept: Counter, body: str) -> int:
    return sum(n for (b, reason), n in kept.items() if b == body and reason == REASON_BURST)


def test_the_default_catches_a_five_fold_jump_within_its_first_second():
    baseline = 20.0
    policy = Policy(
        version=2, learned=True, pattern_rules={pid(STEADY): PatternRule(RATE, "budget", baseline)}
    )
    sampler, clock = sampler_for(policy)
    assert DEFAULT_BURST_FACTOR < 5
    steady = send_second(sampler, clock, {STEADY: 20})
    # A sender's batching may land two seconds of records in one: not a burst.
    lumped = send_second(sampler, clock, {STEADY: 40})
    assert whole(steady, STEADY) == whole(lumped, STEADY) == 0
    first = send_second(sampler, clock, {STEADY: 100})
    # Every record past the limit (4 x 20) is kept whole, from its first second.
    assert whole(first, STEADY) == 100 - DEFAULT_BURST_FACTOR * baseline
    second = send_second(sampler, clock, {STEADY: 100})
    assert whole(second, STEADY) == 100


def test_one_template_of_a_merged_pattern_is_watched_against_its_own_baseline():
    merged = pid(DOWNLOAD)
    rules = {merged: PatternRule(RATE, "budget", 100.0)}
    aliases = {pid(UPLOAD): merged}
    members = {
        pid(UPLOAD): PatternRule(RATE, "budget", 10.0),
        merged: PatternRule(RATE, "budget", 90.0),
    }
    diluted = Policy(version=2, learned=True, pattern_rules=rules, pattern_aliases=aliases)
    watched = Policy(
        version=2,
        learned=True,
        pattern_rules=rules,
        pattern_aliases=aliases,
        signature_rules=members,
    )
    burst = {UPLOAD: 50, DOWNLOAD: 90}  # the upload template 5x, its pattern 1.4x
    for policy, caught in ((diluted, False), (watched, True)):
        sampler, clock = sampler_for(policy)
        send_second(sampler, clock, {UPLOAD: 10, DOWNLOAD: 90})
        first = send_second(sampler, clock, burst)
        held = send_second(sampler, clock, burst)
        assert (whole(first, UPLOAD) == 50 - 4 * 10) is caught
        assert (whole(held, UPLOAD) == 50) is caught
        # The other member is not kept whole for it.
        assert whole(first, DOWNLOAD) == whole(held, DOWNLOAD) == 0


def test_a_template_boosted_alone_is_kept_whole_under_its_pattern_id():
    merged = pid(DOWNLOAD)
    policy = Policy(
        version=2,
        learned=True,
        pattern_rules={merged: PatternRule(RATE, "budget", 100.0)},
        pattern_aliases={pid(UPLOAD): merged},
        signature_rules={pid(UPLOAD): PatternRule(1.0, SPIKE, 10.0)},
    )
    sampler, clock = sampler_for(policy)
    kept = send_second(sampler, clock, {UPLOAD: 50, DOWNLOAD: 100})
    assert kept[UPLOAD, SPIKE] == 50
    assert sum(n for (body, _), n in kept.items() if body == DOWNLOAD) < 40
    request = request_with_bodies(UPLOAD.format(n=3))
    sampler.sample(request)
    (record,) = records(request)
    assert {kv.key: kv.value.string_value for kv in record.attributes}[ATTR_PATTERN_ID] == merged


def test_the_anomaly_budget_bounds_what_a_burst_keeps():
    policy = Policy(
        version=2, learned=True, pattern_rules={pid(STEADY): PatternRule(RATE, "budget", 20.0)}
    )
    sampler, clock = sampler_for(policy, anomaly_keep_per_second=30)
    send_second(sampler, clock, {STEADY: 20})
    send_second(sampler, clock, {STEADY: 200})
    held = send_second(sampler, clock, {STEADY: 200})
    assert whole(held, STEADY) == 30
    # Past the budget the pattern is sampled at its rate again, not dropped.
    assert 0 < sum(n for (_, reason), n in held.items() if reason != REASON_BURST) < 60
