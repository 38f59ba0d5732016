"""The LLM advisor's pure parts: advice in the allocation, judgements read strictly,
redaction, the state snapshot, and the `analysis.llm` settings. Through the real `openai`
client: tests/integration/test_llm.py."""

from __future__ import annotations

import json

import pytest

from lipservice_otel.analysis.llm.config import DEFAULT_LLM_API_KEY_ENV, LlmConfig
from lipservice_otel.analysis.llm.judgement import Judgement, read_judgements
from lipservice_otel.analysis.llm.redaction import Redactor
from lipservice_otel.analysis.rules import ErrorLikeFloor, PatternLoad, allocate_service
from lipservice_otel.analysis.state import AnalysisState
from lipservice_otel.settings import load_settings
from lipservice_otel.validation import ConfigError


def test_allocation_with_advice_rebalances_within_the_budget():
    def advice(importance, min_rate=None):
        return Judgement("x", importance, min_rate, "because", model="m")

    loads = [
        PatternLoad("chatter", 1000.0, 0.0, advice=advice("noise")),
        PatternLoad("orders", 100.0, 0.0, advice=advice("critical")),
        PatternLoad("misc", 500.0, 0.0),
        PatternLoad("errors", 0.0, 20.0),
        PatternLoad("oops", 5000.0, 0.0, error_like=True, advice=advice("noise")),
    ]
    allocations = allocate_service(loads, 0.8, None, 5, 10, ErrorLikeFloor(0.05, 20))
    kept = 1000 * allocations["chatter"].rate + 100 * allocations["orders"].rate + 20
    kept += 500 * allocations["misc"].rate + 5000 * allocations["oops"].rate
    # The error-like floor is raised after the budget (as without a model): a little over.
    assert kept == pytest.approx(0.2 * 6620, rel=0.1)
    assert allocations["oops"].rate >= 0.05
    tight = allocate_service(loads, 0.8, 100.0, 5, 10, ErrorLikeFloor(0.05, 20))
    assert tight["oops"].rate == 0.05 and tight["oops"].reason == "error_like"
    assert allocations["orders"].rate == 1.0 and allocations["orders"].reason == "llm"
    assert "model m judged critical: because" in allocations["orders"].explanation
    assert allocations["chatter"].rate < allocations["misc"].rate

    # Critical floors that cannot fit shrink: the target wins over the model.
    greedy = [
        PatternLoad("a", 1000.0, 0.0, advice=advice("critical")),
        PatternLoad("b", 1000.0, 0.0, advice=advice("high", 0.9)),
    ]
    allocations = allocate_service(greedy, 0.8, None, 5, 10)
    assert 1000 * (allocations["a"].rate + allocations["b"].rate) == pytest.approx(400, rel=0.03)
    assert "shrunk to fit the service budget" in allocations["a"].explanation


def test_snapshot_without_judgements_still_loads():
    state = AnalysisState(cycles=2)
    document = json.loads(state.to_bytes())
    del document["judgements"]
    assert AnalysisState.from_bytes(json.dumps(document).encode()).judgements == {}


def test_configured_redactions_add_to_the_built_in_ones():
    redact = Redactor([r"customer-(?P<secret>\d+)", r"ACME-\w+"])
    assert redact("customer-42 paid ACME-GOLD") == "customer-<redacted> paid <redacted>"
    assert redact("mail bob@example.com from 192.168.1.20") == "mail <email> from <ip>"
    assert redact("card 4111 1111 1111 1111 ok, order 20240101120000123") == (
        "card <card> ok, order 20240101120000123"
    )


def answer(*judgements: dict) -> str:
    return json.dumps({"judgements": list(judgements)})


def test_read_judgements_unit():
    asked = {"a", "b"}
    low = {"pattern_id": "a", "importance": "low", "min_rate": 0, "reason": "r"}
    found, discarded = read_judgements(answer(low), asked)
    assert [(j.pattern_id, j.importance, j.min_rate) for j in found] == [("a", "low", 0.0)]
    assert discarded == {"missing": 1}
    assert read_judgements('{"judgements": {"a": 1}}', asked) == ([], {"malformed": 1})
    assert read_judgements("```json\n{}```", asked) == ([], {"malformed": 1})
    rambling = {"pattern_id": "b", "importance": "high", "min_rate": None}
    found, discarded = read_judgements(
        answer(
            low | {"min_rate": True},  # a boolean is not a rate
            rambling | {"reason": "x" * 500 + "\x1b[31m"},
            rambling | {"reason": "said twice"},
        ),
        asked,
    )
    assert discarded == {"bad_min_rate": 1, "duplicate": 1, "missing": 1}
    assert len(found[0].reason) == 200 and "\x1b" not in found[0].reason


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"analysis.llm.base_url": "localhost:11434"}, "analysis.llm.base_url: must start with"),
        ({"analysis.llm.api_key_env": "sk-abc-123"}, "analysis.llm.api_key_env: must be the name"),
        ({"analysis.llm.redaction_patterns": ["(unclosed"]}, r"redaction_patterns\[0\]: invalid"),
        ({"analysis.llm.temperature": 3}, "analysis.llm.temperature: must be 0-2"),
        ({"analysis.llm.max_patterns_per_call": 0}, "analysis.llm.max_patterns_per_call"),
        ({"analysis.llm.api_key": "sk-abc"}, "analysis.llm.api_key: unknown key"),
        (
            {"analysis.llm.enabled": True, "store.type": "redis", "analysis.llm.timeout_s": 25},
            "analysis.llm.timeout_s: analysis.interval_s \\+ analysis.llm.timeout_s must be below",
        ),
    ],
)
def test_llm_settings_are_validated(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(environ={}, overrides=overrides)


def test_llm_is_off_by_default_and_reads_its_key_from_the_environment():
    llm = load_settings(environ={}).analysis.llm
    assert llm == LlmConfig() and not llm.enabled
    assert llm.api_key_env == DEFAULT_LLM_API_KEY_ENV == "OPENAI_API_KEY"
