"""Policy stores: the history keeps whole rule tables for the newest versions only."""

from __future__ import annotations

import asyncio

from lipservice_otel.app.policy_command import format_history
from lipservice_otel.policy.codec import policy_to_proto
from lipservice_otel.policy.model import PatternRule, Policy
from lipservice_otel.store.config import RedisStoreConfig
from lipservice_otel.store.memory import MemoryStore
from lipservice_otel.store.redis import RedisStore


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


def test_memory_history_keeps_rules_for_the_newest_versions_only():
    store = MemoryStore(None, history_limit=4, history_rules_versions=2)
    saved = [version(n) for n in range(1, 7)]
    save_all(store, saved)
    assert asyncio.run(store.latest_policy()) == saved[-1]
    assert_history(asyncio.run(store.history(10)), saved[-4:], with_rules=2)


def test_memory_snapshot_written_with_more_rules_is_read_with_fewer(tmp_path):
    path = str(tmp_path / "analysis.snapshot")
    store = MemoryStore(path, history_limit=10, history_rules_versions=10)
    saved = [version(n) for n in range(1, 6)]
    save_all(store, saved)
    assert_history(asyncio.run(store.history(10)), saved, with_rules=5)
    asyncio.run(store.close())

    restarted = MemoryStore(path, history_limit=3, history_rules_versions=1)
    assert asyncio.run(restarted.latest_policy()) == saved[-1]
    assert_history(asyncio.run(restarted.history(10)), saved[-3:], with_rules=1)


def test_redis_history_keeps_rules_for_the_newest_versions_only(redis_server):
    async def run() -> list[Policy]:
        store = RedisStore(RedisStoreConfig(url=redis_server.url), 4, history_rules_versions=2)
        try:
            for policy in saved:
                await store.save_policy(policy)
            assert await store.latest_policy() == saved[-1]
            return await store.history(10)
        finally:
            await store.close()

    saved = [version(n) for n in range(1, 7)]
    assert_history(asyncio.run(run()), saved[-4:], with_rules=2)


def test_policy_history_lists_versions_whose_rules_were_dropped():
    store = MemoryStore(None, history_limit=10, history_rules_versions=1)
    saved = [version(n, patterns=n * 100) for n in range(1, 4)]
    save_all(store, saved)
    shown = format_history([policy_to_proto(p) for p in asyncio.run(store.history(10))])
    lines = shown.splitlines()
    assert [line.split()[0] for line in lines] == ["v3", "v2", "v1"]
    for line, policy in zip(lines, reversed(saved), strict=True):
        assert policy.summary in line
        assert f"{len(policy.pattern_rules)} patterns" in line
    assert format_history([]) == "no policy versions yet"
