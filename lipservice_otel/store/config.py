"""Settings of the policy store: this process (with a snapshot file) or a shared Redis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lipservice_otel.validation import require

DEFAULT_HISTORY_RULES_VERSIONS = 1
DEFAULT_SHARDS = 0
DEFAULT_MAX_QUEUED_REPORTS = 10_000
# More shards than this buys no spread and costs a lease renewal each per tick.
MAX_SHARDS = 1024


@dataclass(frozen=True, slots=True)
class RedisStoreConfig:
    # redis://[:password@]host:port/db (rediss:// for TLS).
    url: str = "redis://localhost:6379/0"
    # Every key this store writes starts with this prefix.
    key_prefix: str = "lipservice"
    # The writer lock (and, sharded, each shard's lease) expires this long after its holder
    # stops renewing it, in seconds: a dead replica's work is taken over this long after.
    lock_ttl_s: float = 30.0
    # 0: one writer learns everything, other replicas stand by (lock `:writer`). N >= 1: the
    # analysis is split into N shards by tenant or service, each owned by one replica through
    # a lease, so replicas share the work (docs/operations.md#sharded-analysis). Every
    # replica of one Redis must use the same number.
    shards: int = DEFAULT_SHARDS
    # Sharded: report parts waiting in Redis for their shard's owner, per shard; past it the
    # oldest are dropped (a shard without an owner for long does not grow Redis unbounded).
    max_queued_reports: int = DEFAULT_MAX_QUEUED_REPORTS

    def validate(self, key: str) -> None:
        require(
            self.url.startswith(("redis://", "rediss://", "unix://")),
            f"{key}.url",
            f"must start with redis://, rediss:// or unix://, got {self.url!r}",
        )
        require(bool(self.key_prefix), f"{key}.key_prefix", "must not be empty")
        require(self.lock_ttl_s > 0, f"{key}.lock_ttl_s", "must be > 0")
        require(
            0 <= self.shards <= MAX_SHARDS,
            f"{key}.shards",
            f"must be 0 (one writer) to {MAX_SHARDS}, got {self.shards}",
        )
        require(self.max_queued_reports >= 1, f"{key}.max_queued_reports", "must be >= 1")


@dataclass(frozen=True, slots=True)
class StoreConfig:
    # Where policy versions, history and baselines live: this process, or a Redis server
    # shared by analyzer replicas.
    type: Literal["memory", "redis"] = "memory"
    # memory: snapshot file written every snapshot_interval_s and on shutdown, read on start.
    snapshot_file: str | None = None
    snapshot_interval_s: float = 60.0
    # Policy versions kept in the history.
    history_limit: int = 100
    # The newest history_rules_versions versions keep their pattern rules and aliases; older
    # ones keep everything else (version, settings, generator, time, summary).
    history_rules_versions: int = DEFAULT_HISTORY_RULES_VERSIONS
    redis: RedisStoreConfig = field(default_factory=RedisStoreConfig)

    def validate(self, key: str) -> None:
        require(self.snapshot_interval_s > 0, f"{key}.snapshot_interval_s", "must be > 0")
        require(self.history_limit >= 1, f"{key}.history_limit", "must be >= 1")
        require(self.history_rules_versions >= 1, f"{key}.history_rules_versions", "must be >= 1")
        self.redis.validate(f"{key}.redis")
        require(
            self.type == "redis" or not self.redis.shards,
            f"{key}.redis.shards",
            "shards are leased in Redis: needs store.type: redis",
        )
