"""The store's settings: a bad shard count is refused naming its key."""

from __future__ import annotations

import pytest

from lipservice_otel.settings import load_settings
from lipservice_otel.validation import ConfigError


def settings(**overrides):
    return load_settings(environ={}, overrides=overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"store.type": "redis", "store.redis.shards": -1}, "store.redis.shards"),
        ({"store.type": "redis", "store.redis.shards": 1025}, "store.redis.shards"),
        ({"store.redis.shards": 4}, "needs store.type: redis"),
        (
            {"store.type": "redis", "store.redis.shards": 4, "store.redis.max_queued_reports": 0},
            "store.redis.max_queued_reports",
        ),
    ],
)
def test_bad_shard_settings_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        settings(**overrides)


def test_sharding_is_off_by_default_and_on_with_redis():
    assert settings().store.redis.shards == 0
    sharded = settings(**{"store.type": "redis", "store.redis.shards": 16})
    assert sharded.store.redis.shards == 16
