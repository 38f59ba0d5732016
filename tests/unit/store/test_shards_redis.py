"""The sharded analysis' Redis scripts on a real redis-server (store/shards.py): leases with
fencing tokens, the fenced write, the report queues, the merged versions."""

from __future__ import annotations

import asyncio

import pytest

from lipservice_otel.policy.codec import policy_to_bytes
from lipservice_otel.policy.model import PatternRule, Policy
from lipservice_otel.store.config import RedisStoreConfig
from lipservice_otel.store.redis import RedisStore
from lipservice_otel.store.renewer import LeaseRenewer
from lipservice_otel.store.shards import ShardLost


def run_with_shards(redis_server, scenario, **config):
    async def run():
        settings = RedisStoreConfig(url=redis_server.url, lock_ttl_s=0.3, shards=4, **config)
        store = RedisStore(settings, history_limit=10)
        try:
            return await scenario(store, store.sharding())
        finally:
            await store.close()

    return asyncio.run(run())


def renew_once(shards, replica, tokens):
    """One round trip of the renewer thread's, run here: which of the leases still hold."""
    renewer = LeaseRenewer(shards.config, replica, period_s=1.0, stalled_after_s=10.0)
    try:
        for shard, token in tokens.items():
            renewer.hold(shard, token)
        renewer.renew_once()
        lost = renewer.lost()
    finally:
        renewer.stop()
    assert set(lost) <= set(tokens)
    return {shard: shard not in lost for shard in tokens}


def test_a_lease_taken_again_moves_the_fence_and_refuses_the_old_owners_writes(redis_server):
    async def scenario(store, shards):
        first = await shards.acquire(1, "a")
        assert first == 1
        assert await shards.acquire(1, "b") == 0, "held: nobody else takes it"
        await shards.write(1, first, "a", {"rules": b"from a"})
        await asyncio.sleep(0.4)  # a is paused past its lease
        second = await shards.acquire(1, "b")
        assert second == 2
        await shards.write(1, second, "b", {"rules": b"from b"})
        with pytest.raises(ShardLost):
            await shards.write(1, first, "a", {"rules": b"stale", "state": b"stale"})
        assert renew_once(shards, "a", {1: first}) == {1: False}, "a resumed: refused"
        with pytest.raises(ShardLost):
            await shards.take_reports(1, first)
        assert await shards.read(1, "rules") == b"from b"
        assert await shards.read(1, "state") is None
        assert await shards.read(1, "owner") == b"b"
        assert await shards.read(1, "token") == b"2"

    run_with_shards(redis_server, scenario)


def test_an_expired_lease_nobody_took_is_renewed_by_its_owner(redis_server):
    async def scenario(store, shards):
        token = await shards.acquire(0, "a")
        await asyncio.sleep(0.4)
        assert await shards.holders() == [None, None, None, None]
        assert renew_once(shards, "a", {0: token}) == {0: True}, "the fence did not move"
        assert await shards.holders() == ["a", None, None, None]
        assert await shards.acquire(0, "b") == 0

    run_with_shards(redis_server, scenario)


def test_a_released_lease_is_free_at_once_and_only_its_holder_releases_it(redis_server):
    async def scenario(store, shards):
        token = await shards.acquire(2, "a")
        await shards.release(2, "b", token)
        assert (await shards.holders())[2] == "a"
        await shards.release(2, "a", token)
        assert (await shards.holders())[2] is None
        assert await shards.acquire(2, "b") == token + 1

    run_with_shards(redis_server, scenario)


def test_rules_writes_take_merged_versions_above_the_floor(redis_server):
    async def scenario(store, shards):
        token = await shards.acquire(0, "a")
        assert await shards.write(0, token, "a", {"rules": b"x"}, version_floor=7) == 8
        assert await shards.write(0, token, "a", {"rules": b"y"}, version_floor=7) == 9
        assert await shards.write(0, token, "a", {"state": b"s"}) == 1  # no version taken
        assert await shards.next_version(3) == 10

    run_with_shards(redis_server, scenario)


def test_a_merged_version_older_than_the_saved_one_is_not_saved(redis_server):
    def merged(version: int) -> Policy:
        rules = {"p": PatternRule(0.5, "pattern", 1.0)}
        return Policy(version=version, pattern_rules=rules, learned=True, generator="rules")

    async def scenario(store, shards):
        assert await shards.publish(6, policy_to_bytes(merged(6)))
        assert not await shards.publish(5, policy_to_bytes(merged(5)))
        assert (await store.latest_policy()).version == 6
        assert [p.version for p in await store.history(10)] == [6]

    run_with_shards(redis_server, scenario)


def test_report_parts_queue_per_shard_bounded_and_go_to_the_owner_once(redis_server):
    async def scenario(store, shards):
        token = await shards.acquire(3, "a")
        await shards.queue_reports({3: [b"r1", b"r2"], 1: [b"other"]})
        await shards.queue_reports({3: [b"r3", b"r4"]})
        assert await shards.take_reports(3, token) == [b"r2", b"r3", b"r4"]  # the newest 3
        assert await shards.take_reports(3, token) == []

    run_with_shards(redis_server, scenario, max_queued_reports=3)


def test_shard_policies_are_every_written_shards_rules(redis_server):
    async def scenario(store, shards):
        for shard in (0, 2):
            token = await shards.acquire(shard, "a")
            policy = Policy(version=shard + 1, pattern_rules={f"p{shard}": PatternRule(1.0)})
            await shards.write(shard, token, "a", {"rules": policy_to_bytes(policy)})
        policies = await shards.shard_policies()
        assert sorted(next(iter(p.pattern_rules)) for p in policies) == ["p0", "p2"]

    run_with_shards(redis_server, scenario)


def test_heartbeats_expire_with_the_lease_ttl(redis_server):
    async def scenario(store, shards):
        assert await shards.heartbeat("a") == ["a"]
        assert await shards.heartbeat("b") == ["a", "b"]
        await asyncio.sleep(0.2)
        assert await shards.heartbeat("b") == ["a", "b"]
        await asyncio.sleep(0.2)  # a stopped beating 0.4 s ago
        assert await shards.heartbeat("b") == ["b"]
        await shards.leave("b")
        assert await shards.heartbeat("c") == ["c"]

    run_with_shards(redis_server, scenario)


def test_one_renewal_round_trip_tells_each_lease_held_from_each_lost(redis_server):
    async def scenario(store, shards):
        kept, lost = await shards.acquire(0, "a"), await shards.acquire(1, "a")
        await shards.release(1, "a", lost)
        assert await shards.acquire(1, "b") == lost + 1
        assert renew_once(shards, "a", {0: kept, 1: lost}) == {0: True, 1: False}
        assert renew_once(shards, "a", {}) == {}
        assert await shards.holders() == ["a", "b", None, None]

    run_with_shards(redis_server, scenario)


def test_the_renewer_thread_lets_the_leases_of_a_stalled_event_loop_lapse(redis_server):
    """Renewed from the thread while the event loop shows life; after `stalled_after_s`
    without a sign the leases and heartbeat lapse as a dead replica's, and come back (the
    fence unmoved) once it shows life again."""

    async def scenario(store, shards):
        token = await shards.acquire(0, "a")
        renewer = LeaseRenewer(shards.config, "a", period_s=0.05, stalled_after_s=0.8)
        renewer.hold(0, token)
        renewer.start()
        try:
            await asyncio.sleep(0.6)  # two lease lengths, renewed by the thread
            assert await shards.holders() == ["a", None, None, None]
            assert await shards.heartbeat("b") == ["a", "b"]
            await asyncio.sleep(0.8)  # no `alive` for 1.4 s: nothing renewed since 0.8 s
            assert await shards.holders() == [None, None, None, None]
            assert await shards.heartbeat("b") == ["b"]
            renewer.alive()
            await asyncio.sleep(0.2)
            assert await shards.holders() == ["a", None, None, None]
            assert renewer.lost() == {}
        finally:
            renewer.stop()

    run_with_shards(redis_server, scenario)
