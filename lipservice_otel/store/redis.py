"""Redis store: shared by analyzer replicas; plain Redis commands only (no modules).

Keys (all under `key_prefix`): `:policy:latest` and `:policy:history` (serialized
lipservice.v1.Policy), `:state` (the analysis snapshot), `:writer` (the single-writer lock,
renewed by its holder, expiring after `lock_ttl_s`). New versions are announced on the
`:policy` pub/sub channel. History entries past the newest `history_rules_versions` are
stored without their pattern rules and aliases. With `shards` set, the keys of the sharded
analysis (store/shards.py) live under the same prefix, on the same connection.

Every call has a deadline: a Redis that accepts connections and never answers (frozen,
partitioned) fails a call after TIMEOUT_S instead of holding it, and whoever waits for it,
forever. Unreachable-Redis errors come out as StoreUnavailable; the analyzer retries them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from lipservice_otel._proto.lipservice.v1 import control_pb2
from lipservice_otel.policy.codec import policy_from_bytes, policy_to_bytes
from lipservice_otel.policy.model import Policy
from lipservice_otel.store import clear_rules
from lipservice_otel.store.config import DEFAULT_HISTORY_RULES_VERSIONS, RedisStoreConfig
from lipservice_otel.store.reachable import TIMEOUT_S, UNREACHABLE, reachable
from lipservice_otel.store.shards import RedisShards

# Take the lock when free, or renew it when we already hold it; atomic on the server.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


class RedisStore:
    keeps_state = True

    def __init__(
        self,
        config: RedisStoreConfig,
        history_limit: int,
        history_rules_versions: int = DEFAULT_HISTORY_RULES_VERSIONS,
    ) -> None:
        self._client = aioredis.Redis.from_url(
            config.url,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            # Its own retry covers a dropped connection; outages are the analyzer's to retry.
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.1), retries=1),
        )
        self._config = config
        self._prefix = config.key_prefix
        self._lock_ttl_ms = int(config.lock_ttl_s * 1000)
        self._history_limit = history_limit
        self._rules_versions = history_rules_versions
        self._acquire = self._client.register_script(_ACQUIRE)

    def _key(self, name: str) -> str:
        return f"{self._prefix}:{name}"

    def sharding(self) -> RedisShards:
        """The sharded analysis' commands, on this store's connection."""
        return RedisShards(self._client, self._config, self._history_limit)

    @reachable
    async def latest_policy(self) -> Policy | None:
        blob = await self._client.get(self._key("policy:latest"))
        return policy_from_bytes(blob) if blob else None

    @reachable
    async def save_policy(self, policy: Policy) -> None:
        blob = policy_to_bytes(policy)
        history = self._key("policy:history")
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.set(self._key("policy:latest"), blob)
            pipe.lpush(history, blob)
            pipe.ltrim(history, 0, self._history_limit - 1)
            pipe.publish(self._key("policy"), str(policy.version))
            await pipe.execute()
        await self.trim_history_rules()

    async def trim_history_rules(self) -> None:
        """The version a push moved past the newest history_rules_versions loses its rules.
        One writer at a time pushes (the lock holder, or sharded, the publish script's
        winner; a race costs an entry its trim, not its rules). Saved already: Redis going
        away now costs that entry its trim, not the version its number."""
        history = self._key("policy:history")
        try:
            older = await self._client.lindex(history, self._rules_versions)
            if older is not None:
                message = control_pb2.Policy.FromString(older)
                if clear_rules(message):
                    blob = message.SerializeToString()
                    await self._client.lset(history, self._rules_versions, blob)
        except UNREACHABLE:
            pass

    @reachable
    async def history(self, limit: int) -> list[Policy]:
        blobs = await self._client.lrange(self._key("policy:history"), 0, limit - 1)
        return [policy_from_bytes(b) for b in blobs]

    @reachable
    async def load_state(self) -> bytes | None:
        return await self._client.get(self._key("state"))

    @reachable
    async def save_state(self, state: bytes) -> None:
        await self._client.set(self._key("state"), state)

    @reachable
    async def acquire_writer(self, owner: str) -> bool:
        held = await self._acquire(keys=[self._key("writer")], args=[owner, self._lock_ttl_ms])
        return bool(held)

    @reachable
    async def watch(self, on_policy: Callable[[Policy], Awaitable[None]]) -> None:
        pubsub = self._client.pubsub()
        await pubsub.subscribe(self._key("policy"))
        try:
            # Announcements made while this watch was not subscribed (a restart, an outage).
            latest = await self.latest_policy()
            if latest is not None:
                await on_policy(latest)
            async for message in pubsub.listen():
                if message["type"] != "message":
                    continue
                policy = await self.latest_policy()
                if policy is not None:
                    await on_policy(policy)
        finally:
            await pubsub.aclose()

    async def close(self) -> None:
        await self._client.aclose()
