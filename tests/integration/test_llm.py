"""The LLM advisor through the real `openai` client against a local OpenAI-wire stand-in.

The stand-in (tests/support/openai_standin.py) is real HTTP on 127.0.0.1 with OpenAI's JSON
shapes and status codes; it plays a keyword model by default and takes scripted replies for the
failure cases. The analysis loop runs on a fake clock, so budgets, cool-offs and TTLs take no time.
The advisor's pure parts are tested in tests/unit/analysis/llm/test_llm.py.
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from lipservice_otel.analysis.state import Override
from lipservice_otel.app.cli import main
from lipservice_otel.control.server import ControlPlaneService, start_control_server
from lipservice_otel.policy.model import Policy
from lipservice_otel.store.memory import MemoryStore
from lipservice_otel.telemetry import Telemetry
from tests.support.advisor_cycle import (
    IDS,
    KEY_ENV,
    SECRETS,
    Clock,
    cycle,
    kept_share,
    llm_config,
    make_loop,
    rates,
)
from tests.support.openai_standin import API_KEY, OpenAIStandIn, Reply, error_reply, patterns_in


@pytest.fixture
def standin():
    with OpenAIStandIn() as server:
        yield server


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, API_KEY)


# ---- the merge into the rules ----


def test_judgements_weigh_in_but_the_target_and_the_floors_hold(standin, api_key):
    baseline = cycle(make_loop(Clock()), Clock())
    clock = Clock()
    loop = make_loop(clock, llm_config(standin))
    policy = cycle(loop, clock)

    assert policy.generator == "rules+llm"
    before, after = rates(baseline), rates(policy)
    rule = policy.pattern_rules
    assert rule[IDS["payment"]].rate == 1.0 and rule[IDS["payment"]].reason == "llm"
    assert after["login"] >= 0.5 and rule[IDS["login"]].reason == "llm"
    for noise in ("healthz", "heartbeat", "refused"):
        assert after[noise] < before[noise] and rule[IDS[noise]].reason == "llm"
    # What noise gives up goes to the rest of the service (re-balanced) ...
    assert after["cart"] > before["cart"] and rule[IDS["cart"]].reason == "budget"
    # ... so the service still keeps 20 % of its records.
    assert kept_share(baseline) == pytest.approx(0.2, abs=0.01)
    assert kept_share(policy) == pytest.approx(0.2, abs=0.01)
    # Judged noise, but error-like: never below the error-like floor (see the unit test).
    assert after["refused"] >= 0.05
    assert "6 of 6 patterns judged" in policy.summary
    assert "judgements applied to 6 patterns" in policy.summary


def test_an_override_outranks_the_model_which_is_not_asked(standin, api_key):
    clock = Clock()
    loop = make_loop(clock, llm_config(standin))
    asyncio.run(loop.set_override(Override(IDS["healthz"], rate=0.5)))
    policy = cycle(loop, clock)
    assert policy.pattern_rules[IDS["healthz"]].rate == 0.5
    assert policy.pattern_rules[IDS["healthz"]].reason == "override"
    assert IDS["healthz"] not in {p["pattern_id"] for p in patterns_in(standin.requests[0])}


# ---- caching ----


def test_second_cycle_asks_only_new_patterns_and_judgements_survive_a_restart(
    standin, api_key, tmp_path
):
    clock = Clock()
    store = MemoryStore(str(tmp_path / "snapshot"), 100)
    llm = llm_config(standin, judgement_ttl_s=600)
    loop = make_loop(clock, llm, store)
    cycle(loop, clock)
    assert len(standin.requests) == 1
    assert {p["pattern_id"] for p in patterns_in(standin.requests[0])} == set(IDS.values())

    cycle(loop, clock)
    assert len(standin.requests) == 1  # nothing new: nobody asked
    assert loop.consultation.status == "nothing_new"

    fresh = {"fresh": (["invoice 991 emailed to dave@example.com"], 50, "info")}
    cycle(loop, clock, extra=fresh)
    (sent,) = patterns_in(standin.requests[1])
    assert sent["template"] == "invoice <*> emailed to <*>"
    assert sent["examples"] == ["invoice 991 emailed to <email>"]

    asyncio.run(store.close())
    restarted = make_loop(clock, llm, MemoryStore(str(tmp_path / "snapshot"), 100))
    asyncio.run(restarted.restore())
    assert restarted.state.judgements == loop.state.judgements
    cycle(restarted, clock, extra=fresh)
    assert len(standin.requests) == 2  # the judgements came back with the snapshot
    regenerated = asyncio.run(restarted.regenerate())
    assert regenerated.generator == "rules+llm"
    assert regenerated.pattern_rules[IDS["payment"]].reason == "llm"
    assert "llm: not asked" in regenerated.summary

    clock.now += 600  # past the TTL: asked again
    cycle(restarted, clock, extra=fresh)
    assert len(standin.requests) == 3
    assert len(patterns_in(standin.requests[2])) == len(IDS) + 1


# ---- what is sent ----


def test_no_secret_from_the_examples_reaches_any_request_body(standin, api_key):
    clock = Clock()
    loop = make_loop(clock, llm_config(standin, max_patterns_per_call=2))
    cycle(loop, clock)
    assert len(standin.requests) == 3  # 6 patterns, 2 per call
    for raw in standin.raw_bodies:
        for secret in SECRETS:
            assert secret.encode() not in raw, secret
    sent = {p["pattern_id"]: p for r in standin.requests for p in patterns_in(r)}
    assert (
        sent[IDS["refused"]]["template"]
        == "db connection refused by <*>, password=<redacted> retrying"
    )
    assert sent[IDS["payment"]]["examples"][0].endswith("card declined for <email>")
    assert sent[IDS["refused"]]["severity_mix"] == {"warn": 1.0}
    assert sent[IDS["healthz"]]["volume_per_second"] == 600.0
    # The key travels in the Authorization header only, as the openai client sends it.
    assert all(h["authorization"] == f"Bearer {API_KEY}" for h in standin.headers)


# ---- validation ----


def test_answers_are_validated_strictly(standin, api_key):
    def sloppy(request):
        judged = [
            {"pattern_id": p["pattern_id"], "importance": "noise", "min_rate": None, "reason": "x"}
            for p in patterns_in(request)
        ]
        judged[0]["min_rate"] = 1.5  # out of range
        judged[1]["importance"] = "urgent"  # not in the enum
        judged[2]["reason"] = ""  # no reason
        judged.append({"pattern_id": "feedfacecafebeef", "importance": "critical", "reason": "?"})
        return json.dumps({"judgements": judged})

    clock = Clock()
    loop = make_loop(clock, llm_config(standin))
    standin.script(Reply(respond=sloppy))
    policy = cycle(loop, clock)
    assert loop.consultation.discarded == {
        "bad_min_rate": 1,
        "bad_importance": 1,
        "bad_reason": 1,
        "unknown_id": 1,
        "missing": 3,  # the three thrown away were asked and are left without a judgement
    }
    assert len(loop.consultation.judgements) == 3
    assert policy.generator == "rules+llm"
    assert (
        "discarded bad_importance=1, bad_min_rate=1, bad_reason=1, missing=3, unknown_id=1"
        in policy.summary
    )


# ---- failures: the rules carry on alone ----


def assert_rules_only(policy: Policy, llm_said: str) -> None:
    assert policy.generator == "rules"
    assert llm_said in policy.summary
    assert all(rule.reason != "llm" for rule in policy.pattern_rules.values())


def test_malformed_json_falls_back_to_the_rules(standin, api_key):
    clock = Clock()
    loop = make_loop(clock, llm_config(standin))
    standin.script(Reply(content='{"judgements": [{"pattern_id": '))
    policy = cycle(loop, clock)
    assert_rules_only(policy, "0 of 6 patterns judged, then error (the answer is not the requested")
    assert loop.consultation.discarded == {}


def test_timeout_falls_back_to_the_rules(standin, api_key):
    clock = Clock()
    loop = make_loop(clock, llm_config(standin, timeout_s=0.3))
    standin.script(Reply(content="{}", delay_s=5))
    policy = cycle(loop, clock)
    assert_rules_only(policy, "llm: 1 call, 0 tokens: 0 of 6 patterns judged, then timeout")


def test_429_waits_for_retry_after(standin, api_key):
    clock = Clock()
    loop = make_loop(clock, llm_config(standin))
    standin.script(
        error_reply(
            429,
            "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3.",
            "requests",
            code="rate_limit_exceeded",
            headers={"Retry-After": "120"},
        )
    )
    policy = cycle(loop, clock)
    assert_rules_only(
        policy,
        "llm: 1 call, 0 tokens: 0 of 6 patterns judged, then rate_limited (retry after 120 s)",
    )
    cycle(loop, clock)
    assert len(standin.requests) == 1 and loop.consultation.status == "rate_limited"
    clock.now += 120
    policy = cycle(loop, clock)
    assert len(standin.requests) == 2 and policy.generator == "rules+llm"


def test_calls_and_tokens_are_counted_as_the_server_reports_them(standin, api_key):
    clock = Clock()
    telemetry = Telemetry()
    loop = make_loop(clock, llm_config(standin), telemetry=telemetry)
    cycle(loop, clock)
    assert telemetry.value("lipservice_analysis_llm_calls") == len(standin.requests) >= 1
    assert telemetry.value("lipservice_analysis_llm_tokens") == loop.consultation.tokens > 0


def test_circuit_breaker_opens_after_repeated_failures_and_recovers(standin, api_key):
    clock = Clock()
    loop = make_loop(clock, llm_config(standin, circuit_failures=2, circuit_cooldown_s=300))
    server_error = error_reply(500, "The server had an error processing your request.", "server")
    standin.script(server_error, server_error)
    assert_rules_only(
        cycle(loop, clock), "llm: 1 call, 0 tokens: 0 of 6 patterns judged, then error (HTTP 500)"
    )
    cycle(loop, clock)
    cycle(loop, clock)
    assert len(standin.requests) == 2
    assert loop.consultation.status == "circuit_open"
    # Same rules as the last version, so no new version: the loop still says why.
    assert loop.consultation.describe() == "llm: skipped: circuit_open"

    clock.now += 300  # half-open: one trial; it fails, so the circuit opens again at once
    standin.script(server_error)
    cycle(loop, clock)
    cycle(loop, clock)
    assert len(standin.requests) == 3 and loop.consultation.status == "circuit_open"

    clock.now += 300  # the next trial succeeds: closed again
    policy = cycle(loop, clock)
    assert len(standin.requests) == 4 and policy.generator == "rules+llm"


def test_json_schema_rejected_falls_back_to_json_object(api_key):
    with OpenAIStandIn(supports_json_schema=False) as standin:
        clock = Clock()
        loop = make_loop(clock, llm_config(standin))
        policy = cycle(loop, clock)
        formats = [r["response_format"]["type"] for r in standin.requests]
        assert formats == ["json_schema", "json_object"]
        assert policy.generator == "rules+llm"
        cycle(loop, clock, extra=FRESH)
        assert standin.requests[-1]["response_format"] == {"type": "json_object"}


FRESH = {"fresh": (["invoice 991 emailed"], 50, "info")}


def test_call_and_token_budgets_stop_calls(standin, api_key):
    clock = Clock()
    loop = make_loop(clock, llm_config(standin, calls_per_hour=1))
    cycle(loop, clock)
    cycle(loop, clock, extra=FRESH)
    assert len(standin.requests) == 1 and loop.consultation.status == "budget"
    assert "llm: skipped: budget" in loop.policy.summary
    clock.now += 3600
    cycle(loop, clock, extra=FRESH)
    assert len(standin.requests) == 2

    # Tokens count as the server's usage field reports them (~1,070 for the first call).
    clock = Clock()
    frugal = make_loop(clock, llm_config(standin, token_budget_per_hour=1300, max_tokens=10))
    cycle(frugal, clock)
    assert len(standin.requests) == 3 and frugal.consultation.tokens > 1000
    cycle(frugal, clock, extra=FRESH)
    assert len(standin.requests) == 3 and frugal.consultation.status == "budget"


def test_calls_are_spread_over_the_hour(standin, api_key):
    clock = Clock()
    # 360 calls an hour with 10 s cycles: one call per cycle, two patterns per call.
    loop = make_loop(clock, llm_config(standin, calls_per_hour=360, max_patterns_per_call=2))
    cycle(loop, clock)
    assert len(standin.requests) == 1
    assert loop.consultation.describe().endswith("2 of 2 patterns judged, 4 left for later cycles")
    cycle(loop, clock)
    cycle(loop, clock)
    assert len(standin.requests) == 3
    assert set(loop.state.judgements) == set(IDS.values())
    # The loudest patterns were asked about first.
    assert [p["pattern_id"] for p in patterns_in(standin.requests[0])] == [
        IDS["healthz"],
        IDS["cart"],
    ]


def test_without_a_key_or_enabled_flag_the_rules_work_alone(standin, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    clock = Clock()
    policy = cycle(make_loop(clock, llm_config(standin)), clock)
    assert_rules_only(policy, f"llm: skipped: no_key (${KEY_ENV} is empty)")
    assert not standin.requests
    policy = cycle(make_loop(Clock()), Clock())
    assert_rules_only(policy, "llm: disabled")


# ---- explain ----


def test_policy_explain_shows_the_model_reason(standin, api_key, capsys):
    clock = Clock()
    loop = make_loop(clock, llm_config(standin))
    cycle(loop, clock)
    server_loop = asyncio.new_event_loop()
    thread = threading.Thread(target=server_loop.run_forever, daemon=True)
    thread.start()

    def run(coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, server_loop).result(10)

    async def serve():
        return await start_control_server(ControlPlaneService(loop, loop._store), "127.0.0.1:0")

    server, port = run(serve())
    try:
        code = main(["policy", "--control-plane", f"127.0.0.1:{port}", "explain", IDS["healthz"]])
        shown = capsys.readouterr().out
        assert code == 0
        assert "reason: llm" in shown
        assert "model gpt-4o-mini judged noise: load balancer health checks carry no" in shown
    finally:
        run(server.stop(None))
        server_loop.call_soon_threadsafe(server_loop.stop)
        thread.join(5)
        server_loop.close()
