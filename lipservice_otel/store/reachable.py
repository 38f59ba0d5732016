"""Redis calls that fail as StoreUnavailable: the store's and the sharded analysis' alike.

Every call has a deadline (TIMEOUT_S): a Redis that accepts connections and never answers
(frozen, partitioned) fails a call instead of holding it, and whoever waits for it, forever.
"""

from __future__ import annotations

import functools

import redis.exceptions

from lipservice_otel.store import StoreUnavailable

# Connecting, and waiting for any one reply. Client versions differ (redis-py 5 waits forever).
TIMEOUT_S = 5.0
# BusyLoadingError (a restarted Redis still reading its append-only file) is a ConnectionError.
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def reachable(method):
    @functools.wraps(method)
    async def call(*args, **kwargs):
        try:
            return await method(*args, **kwargs)
        except UNREACHABLE as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    return call
