"""Redis side of the sharded analysis: replicas, shard leases with fencing tokens, fenced
writes of a shard's rules and state, the per-shard report queues, the merged policy.

Keys, all under the store's `key_prefix`:

- `:replicas`: sorted set of live replica ids, scored by when each one's heartbeat expires
  (Redis' own clock, so the replicas' clocks do not matter).
- `:shard:<n>:lease`: the id of the replica that owns shard n; expires `lock_ttl_s` after the
  owner's last renewal.
- `:shard:<n>:fence`: the shard's fencing token, incremented by every acquisition of the lease.
- `:shard:<n>`: hash with the shard's `rules` (a serialized lipservice.v1.Policy of the shard's
  patterns), `state` (its analysis snapshot), `patterns` (its pattern views, JSON, for any
  replica's ListPatterns), and `token` / `owner` of the write that put them there. Written
  only by a script that refuses a token older than the stored fence.
- `:shard:<n>:reports`: list of report parts (serialized lipservice.v1.AggregateReport) for the
  owner to take at its next cycle; bounded to `max_queued_reports`, expiring when nobody
  consumes it.
- `:policy:version`: the merged policy's version counter (INCR with every shard rules write).
- `:policy:published`: the newest version saved to `:policy:latest`; an older one is not saved.

Every script runs atomically on the server, so a paused replica that resumes after its lease
expired finds the fence moved on and its write refused.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from lipservice_otel.policy.codec import policy_from_bytes
from lipservice_otel.policy.model import Policy
from lipservice_otel.store.config import RedisStoreConfig
from lipservice_otel.store.reachable import reachable

# Heartbeat; returns the live replicas. KEYS: replicas. ARGV: replica id, ttl ms.
HEARTBEAT_SCRIPT = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# Take a free lease; returns the new fencing token, or 0 when someone holds it.
# KEYS: lease, fence. ARGV: replica id, ttl ms.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return token
"""

# Renew a lease held with `token`: 1, or 0 when it was lost (another acquisition moved the
# fence on). Expired but untouched since (the fence unchanged), it is taken again: nobody
# else wrote meanwhile. KEYS: lease, fence. ARGV: replica id, ttl ms, token.
RENEW_SCRIPT = """
local holder = redis.call('GET', KEYS[1])
local fence = tonumber(redis.call('GET', KEYS[2]) or '0')
if fence ~= tonumber(ARGV[3]) then return 0 end
if holder ~= false and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# Give a lease up, if it is still ours. KEYS: lease, fence. ARGV: replica id, token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('DEL', KEYS[1])
end
return 1
"""

# The fenced write: refused (returns 0) when the stored fence is newer than `token`. With a
# version floor it also takes the merged policy's next version, in the same atomic step, so
# every version's merge reads every rules write numbered before it; returns that version
# (or 1 without a floor). KEYS: fence, shard hash, version. ARGV: token, owner, floor or "",
# then field, value pairs.
_FENCED_WRITE = """
local fence = tonumber(redis.call('GET', KEYS[1]) or '0')
if fence > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], 'token', ARGV[1], 'owner', ARGV[2], unpack(ARGV, 4))
if ARGV[3] == '' then return 1 end
local version = redis.call('INCR', KEYS[3])
if version <= tonumber(ARGV[3]) then
  version = tonumber(ARGV[3]) + 1
  redis.call('SET', KEYS[3], version)
end
return version
"""

# The merged policy's next version: INCR, never at or below `floor`. KEYS: version. ARGV: floor.
_NEXT_VERSION = """
local version = redis.call('INCR', KEYS[1])
if version <= tonumber(ARGV[1]) then
  version = tonumber(ARGV[1]) + 1
  redis.call('SET', KEYS[1], version)
end
return version
"""

# Take every queued report part, if the shard is still ours: {1, parts...}, or {0}.
# KEYS: fence, reports. ARGV: token.
_TAKE_REPORTS = """
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then return {0} end
local parts = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
table.insert(parts, 1, 1)
return parts
"""

# Save a merged version unless a newer one is saved already; returns 1 when saved.
# KEYS: published, latest, history. ARGV: version, blob, history limit, channel.
_PUBLISH = """
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('LPUSH', KEYS[3], ARGV[2])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[3]) - 1)
redis.call('PUBLISH', ARGV[4], ARGV[1])
return 1
"""


class ShardLost(Exception):
    """A newer owner holds the shard: this replica's write was refused by its fence."""

    def __init__(self, shard: int, token: int) -> None:
        super().__init__(f"shard {shard}: fencing token {token} is stale, a newer owner holds it")
        self.shard = shard
        self.token = token


class RedisShards:
    """The Redis commands of the sharded analysis, on a RedisStore's connection."""

    def __init__(
        self, client: aioredis.Redis, config: RedisStoreConfig, history_limit: int
    ) -> None:
        self._client = client
        self.config = config  # for the lease renewer's own connection (store/renewer.py)
        self._prefix = config.key_prefix
        self.count = config.shards
        self._ttl_ms = int(config.lock_ttl_s * 1000)
        self.max_queued = config.max_queued_reports
        self._history_limit = history_limit
        register = client.register_script
        self._heartbeat = register(HEARTBEAT_SCRIPT)
        self._acquire = register(_ACQUIRE)
        self._release = register(_RELEASE)
        self._fenced_write = register(_FENCED_WRITE)
        self._next_version = register(_NEXT_VERSION)
        self._take_reports = register(_TAKE_REPORTS)
        self._publish = register(_PUBLISH)

    def key(self, name: str) -> str:
        return f"{self._prefix}:{name}"

    def shard_key(self, shard: int, name: str = "") -> str:
        return self.key(f"shard:{shard}" + (f":{name}" if name else ""))

    @reachable
    async def heartbeat(self, replica: str) -> list[str]:
        """Announce `replica` alive for another lock_ttl_s; returns every live replica."""
        live = await self._heartbeat(keys=[self.key("replicas")], args=[replica, self._ttl_ms])
        return [r.decode() for r in live]

    @reachable
    async def leave(self, replica: str) -> None:
        await self._client.zrem(self.key("replicas"), replica)

    @reachable
    async def holders(self) -> list[str | None]:
        """Who owns each shard now (None: free)."""
        leases = await self._client.mget([self.shard_key(n, "lease") for n in range(self.count)])
        return [lease.decode() if lease is not None else None for lease in leases]

    @reachable
    async def acquire(self, shard: int, replica: str) -> int:
        """The lease's new fencing token, or 0 when another replica holds it."""
        return int(
            await self._acquire(
                keys=[self.shard_key(shard, "lease"), self.shard_key(shard, "fence")],
                args=[replica, self._ttl_ms],
            )
        )

    @reachable
    async def release(self, shard: int, replica: str, token: int) -> None:
        await self._release(
            keys=[self.shard_key(shard, "lease"), self.shard_key(shard, "fence")],
            args=[replica, token],
        )

    @reachable
    async def write(
        self,
        shard: int,
        token: int,
        owner: str,
        fields: dict[str, bytes],
        version_floor: int | None = None,
    ) -> int:
        """Fenced HSET of the shard's hash; raises ShardLost when a newer owner holds it.
        With `version_floor`, returns the merged policy version this write takes."""
        pairs = [item for pair in fields.items() for item in pair]
        floor = "" if version_floor is None else version_floor
        written = await self._fenced_write(
            keys=[
                self.shard_key(shard, "fence"),
                self.shard_key(shard),
                self.key("policy:version"),
            ],
            args=[token, owner, floor, *pairs],
        )
        if not written:
            raise ShardLost(shard, token)
        return int(written)

    @reachable
    async def read(self, shard: int, field: str) -> bytes | None:
        return await self._client.hget(self.shard_key(shard), field)

    @reachable
    async def read_all(self, shards: list[int], field: str) -> list[bytes]:
        """`field` of each of `shards` that has one."""
        async with self._client.pipeline(transaction=False) as pipe:
            for shard in shards:
                pipe.hget(self.shard_key(shard), field)
            blobs = await pipe.execute()
        return [blob for blob in blobs if blob]

    @reachable
    async def next_version(self, floor: int) -> int:
        return int(await self._next_version(keys=[self.key("policy:version")], args=[floor]))

    @reachable
    async def unpublished_version(self) -> int:
        """The newest version a rules write took, if no merge under it is saved yet; else 0.
        A write takes its version in the step that writes the rules, so a merge read after
        this contains every write numbered up to it."""
        taken, published = await self._client.mget(
            self.key("policy:version"), self.key("policy:published")
        )
        taken, published = int(taken or 0), int(published or 0)
        return taken if taken > published else 0

    @reachable
    async def shard_policies(self) -> list[Policy]:
        """Every shard's latest rules (shards never written yet have none)."""
        blobs = await self.read_all(list(range(self.count)), "rules")
        return [policy_from_bytes(blob) for blob in blobs]

    @reachable
    async def queue_reports(self, parts: dict[int, list[bytes]]) -> None:
        """Hand report parts to their shards' owners (whichever replica that is)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for shard, blobs in parts.items():
                key = self.shard_key(shard, "reports")
                pipe.rpush(key, *blobs)
                pipe.ltrim(key, -self.max_queued, -1)
                # A shard nobody owns for this long: its reports are too old to learn from.
                pipe.pexpire(key, 4 * self._ttl_ms)
            await pipe.execute()

    @reachable
    async def take_reports(self, shard: int, token: int) -> list[bytes]:
        """Every part queued for `shard`; raises ShardLost when a newer owner holds it."""
        reply = await self._take_reports(
            keys=[self.shard_key(shard, "fence"), self.shard_key(shard, "reports")],
            args=[token],
        )
        if not int(reply[0]):
            raise ShardLost(shard, token)
        return list(reply[1:])

    @reachable
    async def publish(self, version: int, blob: bytes) -> bool:
        """Save a merged version as the latest, unless a newer one is; announce it."""
        saved = await self._publish(
            keys=[
                self.key("policy:published"),
                self.key("policy:latest"),
                self.key("policy:history"),
            ],
            args=[version, blob, self._history_limit, self.key("policy")],
        )
        return bool(saved)
