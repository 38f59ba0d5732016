"""Where the analysis keeps policy versions, their history and its learned state.

One small async interface with one short module per backend (memory with a snapshot file,
Redis). Backends are imported only when chosen, so Redis is never needed to start without it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from lipservice_otel.config import StoreConfig
from lipservice_otel.policy import Policy


class Store(Protocol):
    async def latest_policy(self) -> Policy | None: ...

    async def save_policy(self, policy: Policy) -> None:
        """Make `policy` the latest version and append it to the history."""

    async def history(self, limit: int) -> list[Policy]:
        """Newest first."""

    async def load_state(self) -> bytes | None: ...

    async def save_state(self, state: bytes) -> None: ...

    async def acquire_writer(self, owner: str) -> bool:
        """Hold (or renew) the single-writer lock; False while another analyzer holds it."""

    async def watch(self, on_policy: Callable[[Policy], Awaitable[None]]) -> None:
        """Call `on_policy` for every version another writer saves (runs until cancelled)."""

    async def close(self) -> None: ...


def build_store(config: StoreConfig) -> Store:
    if config.type == "redis":
        from lipservice_otel.store.redis import RedisStore

        return RedisStore(config.redis, config.history_limit)
    from lipservice_otel.store.memory import MemoryStore

    return MemoryStore(config.snapshot_file, config.history_limit)
