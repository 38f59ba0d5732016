"""A replica's heartbeat and shard leases, renewed from a thread of their own.

The event loop of an `analyze` replica also decodes, splits and re-encodes every receiver's
report (tens of them per interval, hundreds of KiB each) and awaits every step of its
cycles: on busy cores a pass of that loop takes seconds, and a renewal awaited on it came
too late (a 43 s gap between two ticks was measured with 30 s leases: the leases expired
and the fences refused the replica's later writes). Here the renewal is one round trip on
a synchronous connection of this thread's own, every `period_s`, whatever the loop does.

Fencing is unchanged: the scripts are store/shards.py's. A lease the renewal finds taken by
a newer owner is forgotten here and reported once by `lost()`, so the replica drops the
shard before it next writes (a write it had started is refused by the fence anyway). A
process paused whole (SIGSTOP) pauses this thread too, and finds the fence moved on.

An event loop that stopped answering altogether (a callback that never returns) must not
keep its shards for good: once the replica has not shown it is `alive` for `stalled_after_s`
(many leases: a tick 70 s late on starved cores was measured), this thread renews nothing
more, and the leases and the heartbeat lapse as a dead replica's do.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from lipservice_otel.store.config import RedisStoreConfig
from lipservice_otel.store.reachable import TIMEOUT_S, UNREACHABLE
from lipservice_otel.store.shards import HEARTBEAT_SCRIPT, RENEW_SCRIPT

log = logging.getLogger(__name__)

# A replica's event loop silent this many lock_ttl_s: its renewals stop (see above).
STALLED_AFTER_TTLS = 10


class LoopStalled(Exception):
    """The replica's event loop has not shown life for longer than it may hold leases."""


class LeaseRenewer:
    """Renews `replica`'s heartbeat and the leases handed to `hold`, every `period_s`."""

    def __init__(
        self, config: RedisStoreConfig, replica: str, period_s: float, stalled_after_s: float
    ) -> None:
        self._client = redis.Redis.from_url(
            config.url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S
        )
        self._heartbeat = self._client.register_script(HEARTBEAT_SCRIPT)
        self._renew = self._client.register_script(RENEW_SCRIPT)
        self._prefix = config.key_prefix
        self._ttl_ms = int(config.lock_ttl_s * 1000)
        self._replica = replica
        self._period_s = period_s
        self._stalled_after_s = stalled_after_s
        self._alive_at = time.monotonic()
        # Held across each round trip: once `forget` returns, no renewal of that lease is in
        # flight, so a release sent after it cannot be undone by a late renewal.
        self._round_trip = threading.Lock()
        # Held only to read or change the two dicts below: never blocks the event loop long.
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}  # shard -> fencing token
        self._lost: dict[int, int] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"leases {self._replica}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(TIMEOUT_S + self._period_s)
        self._client.close()

    def alive(self) -> None:
        """The replica's event loop is running (called from it, every tick and cycle)."""
        self._alive_at = time.monotonic()

    def hold(self, shard: int, token: int) -> None:
        """Renew this lease from now on (just acquired: taken `lock_ttl_s` ago at worst)."""
        with self._lock:
            self._held[shard] = token
            self._lost.pop(shard, None)

    def forget(self, shard: int) -> None:
        """Renew it no more; waits for a round trip in flight (call it off the event loop)."""
        with self._round_trip, self._lock:
            self._held.pop(shard, None)

    def lost(self) -> dict[int, int]:
        """The leases a newer owner took since the last call (shard -> the stale token)."""
        with self._lock:
            lost, self._lost = self._lost, {}
        return lost

    def renew_once(self) -> None:
        """One round trip: the heartbeat and every held lease (none while the loop is stalled)."""
        if time.monotonic() - self._alive_at > self._stalled_after_s:
            raise LoopStalled(f"no sign of the event loop for over {self._stalled_after_s:g} s")
        with self._round_trip:
            with self._lock:
                held = dict(self._held)
            pipe = self._client.pipeline(transaction=False)
            self._heartbeat(
                keys=[f"{self._prefix}:replicas"], args=[self._replica, self._ttl_ms], client=pipe
            )
            for shard, token in held.items():
                self._renew(
                    keys=[self._key(shard, "lease"), self._key(shard, "fence")],
                    args=[self._replica, self._ttl_ms, token],
                    client=pipe,
                )
            _, *renewed = pipe.execute()
            with self._lock:
                for (shard, token), still in zip(held.items(), renewed, strict=True):
                    if not still and self._held.get(shard) == token:
                        del self._held[shard]
                        self._lost[shard] = token

    def _key(self, shard: int, name: str) -> str:
        return f"{self._prefix}:shard:{shard}:{name}"

    def _run(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                self.renew_once()
            except LoopStalled as exc:  # until it shows life again: then the fences decide
                if not self._failing:
                    log.error("shard leases left to lapse: %s", exc)
                self._failing = True
            except UNREACHABLE as exc:  # the fences refuse what a lapsed lease would write
                if not self._failing:
                    log.warning("shard leases not renewed (%s); retrying", exc)
                self._failing = True
            except Exception:  # this thread must outlive any one failed round trip
                log.exception("shard leases: renewal failed; retrying")
                self._failing = True
            else:
                if self._failing:
                    log.info("shard leases renewed again")
                self._failing = False
            self._stopping.wait(max(0.0, self._period_s - (time.monotonic() - started)))
