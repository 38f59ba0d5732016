"""Analysis cycles with the LLM advisor on a fake clock: sample traffic full of secrets, the
loop and its LLM settings, and what a policy keeps of that traffic.

Shared by tests/integration/test_llm.py and bench/llm_cycle.py.
"""

from __future__ import annotations

import asyncio

from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.llm.config import LlmConfig
from lipservice_otel.analysis.loop import AnalysisLoop
from lipservice_otel.policy.model import Policy
from lipservice_otel.sampling.aggregates import IntervalReport, PatternCounts, PatternInfo
from lipservice_otel.store.memory import MemoryStore
from lipservice_otel.telemetry import Telemetry
from lipservice_otel.text.signature import pattern_id, template_of_text
from tests.support.openai_standin import OpenAIStandIn

KEY_ENV = "LIPSERVICE_TEST_LLM_KEY"
SERVICE = "checkout"

# Secrets and personal data inside the examples; none may reach the model.
SECRETS = (
    "alice@example.com",
    "sk-live-4f9a8b7c6d5e4f3a2b1c",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlX2hlcmU",
    "hunter2",
    "10.0.0.7",
    "carol@example.org",
)

# (example bodies, records per 10 s interval, severity bucket)
TRAFFIC = {
    "healthz": (["GET /healthz 200 in 3ms", "GET /healthz 200 in 4ms"], 6000, "info"),
    "payment": (
        [
            "payment for order 8812 failed: card declined for alice@example.com",
            "payment for order 8813 failed: card declined for carol@example.org",
        ],
        300,
        "info",
    ),
    "login": (
        [
            "user bob logged in with token=sk-live-4f9a8b7c6d5e4f3a2b1c Authorization: Bearer "
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlX2hlcmU"
        ],
        400,
        "info",
    ),
    "cart": (["cart 7721 updated with 3 items"], 2000, "info"),
    "refused": (["db connection refused by 10.0.0.7:5432, password=hunter2 retrying"], 800, "warn"),
    "heartbeat": (["heartbeat from worker-3 ok"], 1000, "debug"),
}
IDS = {
    name: pattern_id(SERVICE, template_of_text(bodies[0]))
    for name, (bodies, _, _) in TRAFFIC.items()
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def report(names=tuple(TRAFFIC), extra: dict[str, tuple[list[str], int, str]] | None = None):
    traffic = {name: TRAFFIC[name] for name in names} | (extra or {})
    counts, patterns = [], {}
    for bodies, count, bucket in traffic.values():
        template = template_of_text(bodies[0])
        pid = pattern_id(SERVICE, template)
        counts.append(PatternCounts(SERVICE, pid, bucket, count, 0))
        patterns[pid] = PatternInfo(SERVICE, template, list(bodies))
    return IntervalReport(counts=counts, patterns=patterns, overflow_records=0)


def llm_config(standin: OpenAIStandIn, **overrides) -> LlmConfig:
    values = {
        "enabled": True,
        "model": "gpt-4o-mini",
        "base_url": standin.base_url,
        "api_key_env": KEY_ENV,
        # Generous: the stand-in answers in milliseconds, but a loaded CI machine may not run
        # it for seconds. The timeout test sets its own.
        "timeout_s": 30.0,
        "calls_per_hour": 3600,
    }
    return LlmConfig(**(values | overrides))


def make_loop(
    clock: Clock, llm: LlmConfig | None = None, store=None, telemetry: Telemetry | None = None
) -> AnalysisLoop:
    config = AnalysisConfig(interval_s=10, merge_patterns=False, llm=llm or LlmConfig())
    return AnalysisLoop(
        config, store or MemoryStore(None, 100), Policy(), clock=clock, telemetry=telemetry
    )


def cycle(loop: AnalysisLoop, clock: Clock, *args, **kwargs) -> Policy | None:
    clock.now += 10
    loop.ingest(report(*args, **kwargs))
    return asyncio.run(loop.cycle())


def rates(policy: Policy) -> dict[str, float]:
    return {name: policy.pattern_rules[pid].rate for name, pid in IDS.items()}


def kept_share(policy: Policy) -> float:
    total = sum(count for _, count, _ in TRAFFIC.values())
    kept = sum(count * rates(policy)[name] for name, (_, count, _) in TRAFFIC.items())
    return kept / total
