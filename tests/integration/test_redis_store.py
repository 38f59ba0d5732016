"""The Redis policy store on a real redis-server: the history keeps whole rule tables for the
newest versions only (the memory store: tests/unit/store/test_store.py)."""

from __future__ import annotations

import asyncio

from lipservice_otel.policy.model import Policy
from lipservice_otel.store.config import RedisStoreConfig
from lipservice_otel.store.redis import RedisStore
from tests.support.policy_history import assert_history, version


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
