"""Policy versions for store tests: built, saved in order, and their history checked."""

from __future__ import annotations

import asyncio

from lipservice_otel.policy.model import PatternRule, Policy


def version(number: int, patterns: int = 3) -> Policy:
    rules = {f"v{number}p{n}": PatternRule(0.5, "budget", 10.0) for n in range(patterns)}
    return Policy(
        version=number,
        pattern_rules=rules,
        pattern_aliases={f"v{number}alias": f"v{number}p0"},
        learned=True,
        generator="rules",
        created_unix_nano=number * 10**9,
        summary=f"{patterns} patterns in 1 services, 0 anomalies; llm disabled; change {number}",
    )


def save_all(store, versions: list[Policy]) -> None:
    async def save() -> None:
        for policy in versions:
            await store.save_policy(policy)

    asyncio.run(save())


def assert_history(history: list[Policy], saved: list[Policy], with_rules: int) -> None:
    """Newest first; the newest `with_rules` whole, the others without rules and aliases."""
    assert [p.version for p in history] == [p.version for p in reversed(saved)]
    for n, (kept, policy) in enumerate(zip(history, reversed(saved), strict=True)):
        if n < with_rules:
            assert kept == policy
        else:
            assert kept.pattern_rules == {} and kept.pattern_aliases == {}
            assert (kept.summary, kept.generator, kept.created_unix_nano, kept.learned) == (
                policy.summary,
                policy.generator,
                policy.created_unix_nano,
                policy.learned,
            )
