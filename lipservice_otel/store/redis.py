"""Redis store: shared by analyzer replicas; plain Redis commands only (no modules).

Keys (all under `key_prefix`): `:policy:latest` and `:policy:history` (serialized
lipservice.v1.Policy), `:state` (the analysis snapshot), `:writer` (the single-writer lock,
renewed by its holder, expiring after `lock_ttl_s`). New versions are announced on the
`:policy` pub/sub channel.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from lipservice_otel.config import RedisStoreConfig
from lipservice_otel.control.codec import policy_from_bytes, policy_to_bytes
from lipservice_otel.policy import Policy

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
    def __init__(self, config: RedisStoreConfig, history_limit: int) -> None:
        self._client = aioredis.Redis.from_url(config.url)
        self._prefix = config.key_prefix
        self._lock_ttl_ms = int(config.lock_ttl_s * 1000)
        self._history_limit = history_limit
        self._acquire = self._client.register_script(_ACQUIRE)

    def _key(self, name: str) -> str:
        return f"{self._prefix}:{name}"

    async def latest_policy(self) -> Policy | None:
        blob = await self._client.get(self._key("policy:latest"))
        return policy_from_bytes(blob) if blob else None

    async def save_policy(self, policy: Policy) -> None:
        blob = policy_to_bytes(policy)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.set(self._key("policy:latest"), blob)
            pipe.lpush(self._key("policy:history"), blob)
            pipe.ltrim(self._key("policy:history"), 0, self._history_limit - 1)
            pipe.publish(self._key("policy"), str(policy.version))
            await pipe.execute()

    async def history(self, limit: int) -> list[Policy]:
        blobs = await self._client.lrange(self._key("policy:history"), 0, limit - 1)
        return [policy_from_bytes(b) for b in blobs]

    async def load_state(self) -> bytes | None:
        return await self._client.get(self._key("state"))

    async def save_state(self, state: bytes) -> None:
        await self._client.set(self._key("state"), state)

    async def acquire_writer(self, owner: str) -> bool:
        held = await self._acquire(keys=[self._key("writer")], args=[owner, self._lock_ttl_ms])
        return bool(held)

    async def watch(self, on_policy: Callable[[Policy], Awaitable[None]]) -> None:
        pubsub = self._client.pubsub()
        await pubsub.subscribe(self._key("policy"))
        try:
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
