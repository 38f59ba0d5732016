"""Policy stores: the history keeps whole rule tables for the newest versions only.

The memory store here; the Redis store on a real server: tests/integration/test_redis_store.py.
"""

from __future__ import annotations

import asyncio

from lipservice_otel.app.policy_command import format_history
from lipservice_otel.policy.codec import policy_to_proto
from lipservice_otel.store.memory import MemoryStore
from tests.support.policy_history import assert_history, save_all, version


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
