"""The memory store's snapshot file: written off the event loop, never leaving a temp file.

Tried before the fix: snapshot() serialized, wrote and fsynced on the event loop in one
synchronous call (nothing else ran meanwhile; it was not even awaitable), and a failure
after the temp file was created (here: the rename) left `.snapshot-*` behind for good.
"""

from __future__ import annotations

import asyncio

import pytest

from lipservice_otel.store.memory import MemoryStore
from tests.support.policy_history import save_all, version


def test_snapshot_lets_the_event_loop_run_while_it_writes(tmp_path):
    path = tmp_path / "analysis.snapshot"
    store = MemoryStore(str(path), history_limit=10, history_rules_versions=10)
    save_all(store, [version(n, patterns=2000) for n in range(1, 6)])

    async def ticks_during_snapshot() -> int:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        before = ticks
        await store.snapshot()
        ticker.cancel()
        return ticks - before

    assert asyncio.run(ticks_during_snapshot()) > 0
    asyncio.run(store.close())
    restored = MemoryStore(str(path), history_limit=10, history_rules_versions=10)
    assert [p.version for p in asyncio.run(restored.history(10))] == [5, 4, 3, 2, 1]


def test_a_failed_snapshot_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "analysis.snapshot"
    store = MemoryStore(str(path), history_limit=10, history_rules_versions=10)
    save_all(store, [version(1)])
    # A directory where the file should go: the temp file is written, the rename fails.
    (path / "occupied").mkdir(parents=True)
    with pytest.raises(OSError):
        asyncio.run(store.snapshot())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis.snapshot"]
