"""Where the analysis keeps policy versions, their history and its learned state.

One small async interface with one short module per backend (memory with a snapshot file,
Redis). Backends are imported only when chosen, so Redis is never needed to start without it.

The newest `history_rules_versions` entries of the history are whole policies; older ones
keep everything but their pattern rules and aliases (version, settings, generator, time and
the summary of what changed), so a hundred versions of 50,000 patterns each do not cost a
hundred rule tables.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Protocol

from lipservice_otel._proto.lipservice.v1 import control_pb2
from lipservice_otel.policy.model import Policy
from lipservice_otel.store.config import StoreConfig


class StoreUnavailable(Exception):
    """The store cannot be reached right now (Redis restarting, a network partition): worth
    retrying later, not a bug. Backends raise it instead of their client's own errors."""


class Store(Protocol):
    # Whether saved state can be read back later (after a restart, by another replica): when
    # it cannot, the analysis loop does not serialize its state every cycle.
    keeps_state: bool

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
        """Call `on_policy` with the latest version once subscribed, then for every version
        another writer saves (runs until cancelled or the store becomes unavailable)."""

    async def close(self) -> None: ...


def without_rules(policy: Policy) -> Policy:
    """A history entry past the newest `history_rules_versions`: the version, not its table."""
    if not policy.pattern_rules and not policy.pattern_aliases and not policy.signature_rules:
        return policy
    return replace(policy, pattern_rules={}, pattern_aliases={}, signature_rules={})


def clear_rules(message: control_pb2.Policy) -> bool:
    """`without_rules` on a policy message, in place; False when it had none to drop."""
    if not message.pattern_rules and not message.pattern_aliases and not message.signature_rules:
        return False
    message.ClearField("pattern_rules")
    message.ClearField("pattern_aliases")
    message.ClearField("signature_rules")
    return True


def build_store(config: StoreConfig) -> Store:
    if config.type == "redis":
        from lipservice_otel.store.redis import RedisStore

        return RedisStore(config.redis, config.history_limit, config.history_rules_versions)
    from lipservice_otel.store.memory import MemoryStore

    return MemoryStore(config.snapshot_file, config.history_limit, config.history_rules_versions)
