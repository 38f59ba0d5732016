"""Records without a severity through the real receiver: inferred levels and error-like floors."""

from __future__ import annotations

from collections import Counter

import pytest

from lipservice_otel.analysis.rules import ErrorLikeFloor, PatternLoad, allocate_service
from tests.support.log_requests import request_with_bodies
from tests.support.running_service import make_settings, with_policy
from tests.support.traffic import NOISE, Pattern, TrafficSender, attributes

UNSPECIFIED_LINES = [
    "ERROR payment worker crashed: connection reset",
    '{"level":"error","msg":"db down"}',
    "<27>1 2024-01-02T03:04:05Z host app - - disk failure",
    "2024-01-02 03:04:05,123 ERROR [main] c.e.App - boom",
    "E0102 03:04:05.678901 123 file.go:12] lost leader",
    'time="2024-01-02T03:04:05Z" level=fatal msg="cannot start"',
]
UNSPECIFIED_NOISE = ["request handled in 12ms", "INFO cache warmed", "user 4 logged in"]


def unspecified_request(bodies):
    request = request_with_bodies(*bodies)
    for record in request.resource_logs[0].scope_logs[0].log_records:
        record.severity_number = 0
    return request


@pytest.mark.parametrize("write", [False, True])
def test_unlabelled_errors_are_kept_by_the_floor(sink, start_service, write):
    settings = with_policy(
        make_settings(
            sink.endpoint,
            **{"analysis.embedded": False, "sampler.infer_severity.write": write},
        ),
        default_rate=0.0,
    )
    running = start_service(settings)
    sender = TrafficSender(running.endpoint)
    request = unspecified_request(UNSPECIFIED_LINES + UNSPECIFIED_NOISE)
    sender.export(request.SerializeToString(), timeout=5)
    sender.close()
    received = sink.wait_for_records(len(UNSPECIFIED_LINES))
    running.stop()
    assert sorted(r.body.string_value for _, r in received) == sorted(UNSPECIFIED_LINES)
    for _, record in received:
        values = attributes(record)
        assert values["lipservice.reason"] == "severity"
        if write:
            assert record.severity_number >= 17
            assert values["lipservice.severity_inferred"] is True
        else:
            assert record.severity_number == 0, "the record is not rewritten by default"
            assert "lipservice.severity_inferred" not in values


def test_error_like_floor_raises_a_loud_pattern():
    loads = [
        PatternLoad("noise", 1000.0, 0.0),
        PatternLoad("failing", 1000.0, 0.0, error_like=True),
    ]
    floor = ErrorLikeFloor(min_rate=0.05, min_examples_per_interval=20)
    allocations = allocate_service(loads, 0.99, None, 5, 10, floor)
    assert allocations["noise"].reason == "budget" and allocations["noise"].rate < 0.05
    assert allocations["failing"].reason == "error_like"
    assert allocations["failing"].rate == 0.05
    by_examples = ErrorLikeFloor(min_rate=0.0, min_examples_per_interval=200)
    allocations = allocate_service(loads, 0.99, None, 5, 10, by_examples)
    assert allocations["failing"].rate == pytest.approx(200 / (1000 * 10))
    assert allocations["failing"].reason == "error_like"
    below_budget = ErrorLikeFloor(min_rate=0.0, min_examples_per_interval=20)
    allocations = allocate_service(loads, 0.99, None, 5, 10, below_budget)
    assert allocations["failing"].reason == "budget"  # the budget already keeps more


def test_error_like_pattern_keeps_its_floor_while_noise_meets_the_target(sink, start_service):
    settings = make_settings(
        sink.endpoint,
        **{
            "analysis.interval_s": 1.0,
            "analysis.target_reduction": 0.95,
            "analysis.error_like_min_rate": 0.0,
            "analysis.error_like_min_examples_per_interval": 60,
            "sampler.report_interval_s": 0.25,
        },
    )
    running = start_service(settings)
    failing = Pattern("failing", "upstream call to inventory {n} failed: timed out", 600, 0)
    sender = TrafficSender(running.endpoint)
    sender.run([*NOISE, failing], seconds=7.0, tag="run")
    policy = running.service.sampler.policy
    running.stop()
    sender.close()

    reasons = {rule.reason for rule in policy.pattern_rules.values()}
    assert "error_like" in reasons
    kept: Counter = Counter()
    for _, record in sink.records():
        values = attributes(record)
        kept[values["scenario.pattern"], values["scenario.second"]] += 1
    # Three whole seconds after learning, summed: each second's count is binomial around 60
    # (sd ~7.3), so single seconds would make a flaky bound; three make a 3.5 sd margin.
    learned = sorted({s for (_, _, s) in sender.sent})[-4:-1]

    def over_learned(pattern: str, counts) -> int:
        return sum(counts.get((pattern, s), 0) for s in learned)

    sent = {(name, s): n for (_, name, s), n in sender.sent.items()}
    # 60 examples per 1 s interval for the error-like pattern ...
    assert over_learned("failing", kept) >= 0.75 * 60 * len(learned), kept
    # ... while the loudest noise pattern is sampled far harder.
    noise_rate = over_learned("noise0", kept) / over_learned("noise0", sent)
    failing_rate = over_learned("failing", kept) / over_learned("failing", sent)
    assert failing_rate > 2 * noise_rate
