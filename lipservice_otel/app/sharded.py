"""The sharded analysis of one `analyze` replica (store.redis.shards >= 1).

The replica owns the shards it holds a lease on (store/shards.py), each an AnalysisLoop of
its own over the shard's patterns, reading and writing the shard's fenced hash in Redis
(ShardStore). Around them, the same face as one AnalysisLoop for the control plane:

1. `ingest` splits every receiver's report by shard (analysis/shards.py) and queues the parts;
   `tick` pushes them to the shards' report lists in Redis, whoever owns them.
2. The heartbeat and the leases are renewed every lock_ttl_s / 4 from a thread with a Redis
   connection of its own (store/renewer.py), so a busy event loop cannot let them lapse.
   `tick` (every lock_ttl_s / 4, or analysis.interval_s if shorter) drops the shards whose
   lease a newer owner took, gives up shards above this replica's quota and takes free ones
   up to it (a taken shard restores its rules and state: history and baselines go on).
3. `cycle` (every analysis.interval_s) takes each owned shard's queued parts, learns, plans
   and writes the shard's rules and state, each write fenced by the lease's token.
4. A rules write takes the merged policy's next version in the same Redis step. Once per
   cycle the owner of shard 0 merges every shard's rules with the configured base and saves
   the merge under the newest version unless a newer one is saved, announced on the channel
   every replica watches, as with one writer; an override or a regeneration is published by
   the replica that made it, at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from lipservice_otel._proto.lipservice.v1 import control_pb2
from lipservice_otel.analysis.clock import SteadyClock
from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.loop import AnalysisLoop, LoopObserver
from lipservice_otel.analysis.plan import PatternView
from lipservice_otel.analysis.shards import (
    merge_policies,
    merge_states,
    quota,
    rebalance,
    views_from_json,
    views_to_json,
)
from lipservice_otel.analysis.state import AnalysisState, Override
from lipservice_otel.control.codec import (
    report_from_proto,
    report_to_proto,
    split_report_message,
)
from lipservice_otel.policy.codec import policy_from_bytes, policy_to_bytes
from lipservice_otel.policy.model import Policy
from lipservice_otel.sampling.aggregates import IntervalReport
from lipservice_otel.store import StoreUnavailable
from lipservice_otel.store.redis import RedisStore
from lipservice_otel.store.renewer import STALLED_AFTER_TTLS, LeaseRenewer
from lipservice_otel.store.shards import RedisShards, ShardLost
from lipservice_otel.telemetry import Telemetry

log = logging.getLogger(__name__)
T = TypeVar("T")

# Exemption overrides are not any one pattern's: the owner of this shard keeps them.
EXEMPTIONS_SHARD = 0
# The owner of this shard publishes the merged policy every analysis interval.
PUBLISHER_SHARD = 0


class ShardStore:
    """The store one shard's AnalysisLoop writes through: the shard's hash, every write
    fenced by the token of the lease it was taken with (ShardLost once a newer owner holds
    it). Its policies are the shard's rules; each write's merged version goes to `on_rules`
    (the replica publishes the merge once its shards' work is done)."""

    keeps_state = True

    def __init__(
        self,
        shards: RedisShards,
        shard: int,
        token: int,
        owner: str,
        version_floor: Callable[[], int],
        on_rules: Callable[[int], None],
        views: Callable[[], list[PatternView]],
    ) -> None:
        self._shards = shards
        self._shard = shard
        self._token = token
        self._owner = owner
        self._version_floor = version_floor
        self._on_rules = on_rules
        self._views = views

    async def latest_policy(self) -> Policy | None:
        blob = await self._shards.read(self._shard, "rules")
        return policy_from_bytes(blob) if blob else None

    async def save_policy(self, policy: Policy) -> None:
        version = await self._shards.write(
            self._shard,
            self._token,
            self._owner,
            {"rules": policy_to_bytes(policy)},
            version_floor=self._version_floor(),
        )
        self._on_rules(version)

    async def history(self, limit: int) -> list[Policy]:
        return []  # the merged versions' history is the store's

    async def load_state(self) -> bytes | None:
        return await self._shards.read(self._shard, "state")

    async def save_state(self, state: bytes) -> None:
        # With the views the cycle just planned, for the ListPatterns of any replica.
        views = await asyncio.to_thread(views_to_json, self._views())  # off the event loop
        fields = {"state": state, "patterns": views}
        await self._shards.write(self._shard, self._token, self._owner, fields)

    async def acquire_writer(self, owner: str) -> bool:
        return True  # the lease was taken before this store was made

    async def watch(self, on_policy: Callable[[Policy], Awaitable[None]]) -> None:
        await asyncio.Event().wait()  # the replica watches the merged versions

    async def close(self) -> None:
        pass


@dataclass(slots=True)
class OwnedShard:
    loop: AnalysisLoop
    token: int


class ShardedAnalysis:
    """This replica's shards, with the face of one AnalysisLoop for the control plane."""

    def __init__(
        self,
        config: AnalysisConfig,
        store: RedisStore,
        base: Policy,
        replica: str,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._shards = store.sharding()
        lock_ttl_s = self._shards.config.lock_ttl_s
        self._renewer = LeaseRenewer(
            self._shards.config, replica, lock_ttl_s / 4, STALLED_AFTER_TTLS * lock_ttl_s
        )
        self._base = base
        self.replica = replica
        self._telemetry = telemetry or Telemetry()
        self._owned: dict[int, OwnedShard] = {}
        self._outbox: dict[int, list[bytes]] = {}
        self._subscribers: list[Callable[[Policy], None]] = []
        self._observers: list[LoopObserver] = []
        self.policy: Policy | None = None
        # Merged versions stay above the configured base's and the store's latest at start
        # (a store that had one writer before keeps counting from there).
        self._floor = base.version
        # The newest merged version a shard's rules write took and nobody published yet.
        self._written = 0
        self._clock = SteadyClock()
        # One shard's work at a time: cycles, regenerations, overrides, reads of the state.
        self._lock = asyncio.Lock()

    # ---- the face of one AnalysisLoop ----

    async def restore(self) -> None:
        self.policy = await self._store.latest_policy()
        if self.policy is not None:
            self._floor = max(self._floor, self.policy.version)

    def subscribe(self, callback: Callable[[Policy], None]) -> None:
        self._subscribers.append(callback)
        if self.policy is not None:
            callback(self.policy)

    def observe(self, observer: LoopObserver) -> None:
        self._observers.append(observer)

    @property
    def state(self) -> AnalysisState:
        """What the owned shards know, as one state (to read, not to change)."""
        return merge_states(o.loop.state for o in self._owned.values())

    async def inspect(self, read: Callable[[AnalysisState, Policy], T]) -> T:
        async with self._lock:  # no shard cycle runs meanwhile
            # In a worker thread, as AnalysisLoop.inspect does: a report over many patterns
            # takes seconds the control plane's event loop must not lose.
            return await asyncio.to_thread(read, self.state, self.policy or self._base)

    def ingest(self, report: IntervalReport) -> None:
        self.ingest_message(report_to_proto(report, self.replica, 0))

    def ingest_message(self, message: control_pb2.AggregateReport) -> None:
        """Split by shard and queue for the next tick; bounded as the Redis lists are. Split
        as it came off the wire: converting every count and sample to our values and back
        was most of a replica's CPU at 100 receivers."""
        for observer in self._observers:
            observer.reported(message)
        limit = self._shards.max_queued
        for shard, part in split_report_message(message, self._shards.count).items():
            queued = self._outbox.setdefault(shard, [])
            queued.append(part.SerializeToString())
            if len(queued) > limit:
                del queued[: len(queued) - limit]
                self._telemetry.counter("lipservice_analysis_dropped_report_parts").inc()

    async def adopt(self, policy: Policy) -> None:
        """A merged version (this replica's or another's): serve it if it is newer."""
        if self.policy is not None and policy.version <= self.policy.version:
            return
        self.policy = policy
        for callback in self._subscribers:
            callback(policy)

    async def regenerate(self) -> Policy | None:
        for shard, owned in list(self._owned.items()):
            await self._on_shard(shard, owned, owned.loop.regenerate)
        if not self._written:
            self._written = await self._shards.next_version(self._floor)
        await self._publish_written()
        return self.policy

    async def set_base(self, base: Policy) -> Policy | None:
        self._base = base
        self._floor = max(self._floor, base.version)
        for shard, owned in list(self._owned.items()):
            await self._on_shard(shard, owned, lambda o=owned: o.loop.set_base(base))
        if not self._written:
            self._written = await self._shards.next_version(self._floor)
        await self._publish_written()
        return self.policy

    async def set_override(self, override: Override) -> Policy | None:
        shard = self._shard_knowing(override)
        if shard is None:
            where = "its pattern" if override.exemption is None else f"shard {EXEMPTIONS_SHARD}"
            raise StoreUnavailable(
                f"{override.key}: {where} is analysed by another replica; "
                "ask the replica whose ListPatterns shows it"
            )
        owned = self._owned[shard]
        await self._on_shard(shard, owned, lambda: owned.loop.set_override(override))
        await self._publish_written()
        return self.policy

    def patterns(self, service: str = "") -> list[PatternView]:
        views = [v for o in self._owned.values() for v in o.loop.patterns(service)]
        return sorted(views, key=lambda v: v.volume_per_second, reverse=True)

    async def all_patterns(self, service: str = "") -> list[PatternView]:
        """This replica's shards' views, and the other shards' as their owners last wrote
        them (read from Redis only when asked: ListPatterns, `policy patterns`)."""
        views = [v for o in self._owned.values() for v in o.loop.patterns(service)]
        others = [n for n in range(self._shards.count) if n not in self._owned]
        for blob in await self._shards.read_all(others, "patterns"):
            views.extend(v for v in views_from_json(blob) if not service or v.service == service)
        return sorted(views, key=lambda v: v.volume_per_second, reverse=True)

    def explain(self, pattern_id: str) -> PatternView | None:
        for owned in self._owned.values():
            view = owned.loop.explain(pattern_id)
            if view is not None:
                return view
        return None

    def from_wall(self, unix_s: float) -> float:
        return self._clock() + (unix_s - time.time())

    # ---- the shards ----

    async def tick(self) -> None:
        """Drop lost shards, push queued report parts, then take or give up shards toward
        the quota. The renewals are the renewer thread's, started at the first tick."""
        self._renewer.alive()
        self._renewer.start()
        live = await self._shards.heartbeat(self.replica)
        self._drop_lost()
        await self._flush()
        holders = await self._shards.holders()
        free = [n for n, holder in enumerate(holders) if holder is None and n not in self._owned]
        target = quota(self.replica, live, self._shards.count)
        take, give = rebalance(self._owned, free, target)
        # Not under the cycles' lock: a long cycle must not hold up the renewals behind it.
        # A shard given up mid-cycle is safe: its new owner's token refuses the late write.
        for shard in give:
            owned = self._owned.pop(shard)
            await asyncio.to_thread(self._renewer.forget, shard)  # then no renewal undoes it
            await self._shards.release(shard, self.replica, owned.token)
            log.info("shard %d given up (quota %d of %d replicas)", shard, target, len(live))
        for shard in take:
            await self._take(shard)
        self._telemetry.gauge("lipservice_analysis_shards_owned").set(len(self._owned))

    async def cycle(self) -> None:
        """One analysis cycle of every owned shard, over the parts queued for it; the owner of
        shard 0 then publishes the merge of every shard's rules as they are."""
        self._renewer.alive()
        await self._flush()
        for shard, owned in list(self._owned.items()):
            await self._on_shard(shard, owned, lambda o=owned, s=shard: self._cycle_shard(s, o))
        # One merged version per interval, not one per replica: each is the whole policy to
        # every receiver (5 MiB at 100,000 rules, a quarter of a second to decode on each).
        # A shard of another replica waits for the publisher's next cycle, at most an
        # interval; people's overrides and regenerations are published at once.
        if PUBLISHER_SHARD in self._owned:
            self._rules_written(await self._shards.unpublished_version())
            await self._publish_written()
        anomalies = [a for o in self._owned.values() for a in o.loop.anomalies]
        for observer in self._observers:
            observer.cycled(anomalies)

    async def leave(self) -> None:
        """Stopping: give every shard up now, so the others take them at their next tick."""
        await asyncio.to_thread(self._renewer.stop)  # renews nothing after the releases
        await self._flush()
        for shard, owned in list(self._owned.items()):
            await self._shards.release(shard, self.replica, owned.token)
        self._owned.clear()
        await self._shards.leave(self.replica)

    async def _cycle_shard(self, shard: int, owned: OwnedShard) -> None:
        for blob in await self._shards.take_reports(shard, owned.token):
            owned.loop.ingest(report_from_proto(control_pb2.AggregateReport.FromString(blob)))
        await owned.loop.cycle()

    async def _on_shard(self, shard: int, owned: OwnedShard, work) -> None:
        """Run `work` on an owned shard, unless it was given up meanwhile; a refused write
        drops the shard (a newer owner has it: this replica was paused past its lease)."""
        async with self._lock:
            self._drop_lost()  # the renewer saw a newer owner: no write to be refused
            if self._owned.get(shard) is not owned:
                return
            try:
                await work()
            except ShardLost as exc:
                self._drop(shard, owned, str(exc))

    async def _take(self, shard: int) -> None:
        token = await self._shards.acquire(shard, self.replica)
        if not token:
            return  # another replica was quicker
        self._renewer.hold(shard, token)
        try:
            await self._restore_taken(shard, token)
        except BaseException:
            await asyncio.to_thread(self._renewer.forget, shard)  # it lapses, as untaken
            raise

    async def _restore_taken(self, shard: int, token: int) -> None:
        store = ShardStore(
            self._shards,
            shard,
            token,
            self.replica,
            lambda: self._floor,
            self._rules_written,
            lambda: loop.patterns(),  # the loop below, once it has planned
        )
        loop = AnalysisLoop(
            self._config,
            store,
            self._base,
            telemetry=self._telemetry,
            versions_of=f"shard {shard} rules",
        )
        await loop.restore()
        # Queued while the shard had no owner, over an interval nobody knows: learned as one
        # short interval they would read as a spike. Receivers report again every interval.
        unowned = await self._shards.take_reports(shard, token)
        if unowned:
            self._telemetry.counter("lipservice_analysis_dropped_report_parts").inc(len(unowned))
        self._owned[shard] = OwnedShard(loop, token)
        self._telemetry.counter("lipservice_analysis_shard_takeovers", event="taken").inc()
        log.info(
            "shard %d taken (fencing token %d, %d patterns restored, %d unowned reports dropped)",
            shard,
            token,
            len(loop.state.patterns),
            len(unowned),
        )

    def _drop_lost(self) -> None:
        for shard, token in self._renewer.lost().items():
            owned = self._owned.get(shard)
            if owned is not None and owned.token == token:
                self._drop(shard, owned, "its lease was taken over by a newer owner")

    def _drop(self, shard: int, owned: OwnedShard, why: str) -> None:
        if self._owned.get(shard) is owned:
            del self._owned[shard]
            self._telemetry.counter("lipservice_analysis_shard_takeovers", event="dropped").inc()
            log.warning("shard %d dropped (fencing token %d): %s", shard, owned.token, why)

    def _shard_knowing(self, override: Override) -> int | None:
        if override.exemption is not None:
            return EXEMPTIONS_SHARD if EXEMPTIONS_SHARD in self._owned else None
        for shard, owned in self._owned.items():
            state = owned.loop.state
            if override.key in state.patterns or override.key in state.aliases.values():
                return shard
        return None

    async def _flush(self) -> None:
        if not self._outbox:
            return
        parts, self._outbox = self._outbox, {}
        try:
            await self._shards.queue_reports(parts)
        except StoreUnavailable:
            for shard, blobs in parts.items():  # back in front of what came meanwhile
                self._outbox[shard] = blobs + self._outbox.get(shard, [])
            raise

    def _rules_written(self, version: int) -> None:
        self._written = max(self._written, version)

    async def _publish_written(self) -> None:
        """One merged version for all the shard writes since the last: the newest version
        they took. Its merge reads every write numbered up to it."""
        version = self._written
        if version:
            await self._publish_merged(version)  # kept for the next try if Redis is away
            if self._written == version:
                self._written = 0

    async def _publish_merged(self, version: int) -> None:
        """The merge of every shard's rules under `version`, saved unless a newer version
        is; served here either way when newer than what this replica serves."""
        merged = merge_policies(self._base, await self._shards.shard_policies(), version)
        if await self._shards.publish(version, policy_to_bytes(merged)):
            await self._store.trim_history_rules()
            log.info("policy version %d: %s", version, merged.summary)
        await self.adopt(merged)
