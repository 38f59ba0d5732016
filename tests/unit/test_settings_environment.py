"""Which LIPSERVICE_* variables the settings loader reads (docs/configuration.md).

Tried before the fix: every LIPSERVICE_* variable was read, so the ones Kubernetes injects for
a Service named lipservice-analyze stopped the load ("analyze_port: unknown key").
"""

from __future__ import annotations

import pytest

from lipservice_otel.settings import env_key, ignored_environment, load_settings
from lipservice_otel.validation import ConfigError

# What Kubernetes injects into every pod of a namespace holding Services named
# lipservice-analyze (port 4320) and lipservice-redis (port 6379).
SERVICE_LINKS = {
    "LIPSERVICE_ANALYZE_SERVICE_HOST": "10.96.0.12",
    "LIPSERVICE_ANALYZE_SERVICE_PORT": "4320",
    "LIPSERVICE_ANALYZE_PORT": "tcp://10.96.0.12:4320",
    "LIPSERVICE_ANALYZE_PORT_4320_TCP": "tcp://10.96.0.12:4320",
    "LIPSERVICE_ANALYZE_PORT_4320_TCP_PROTO": "tcp",
    "LIPSERVICE_ANALYZE_PORT_4320_TCP_PORT": "4320",
    "LIPSERVICE_ANALYZE_PORT_4320_TCP_ADDR": "10.96.0.12",
    "LIPSERVICE_REDIS_SERVICE_HOST": "10.96.0.13",
    "LIPSERVICE_REDIS_PORT": "tcp://10.96.0.13:6379",
    "LIPSERVICE_REDIS_PORT_6379_TCP": "tcp://10.96.0.13:6379",
}


def test_service_links_are_ignored_and_real_settings_still_read():
    settings = load_settings(
        environ={
            **SERVICE_LINKS,
            "LIPSERVICE_EXPORTER__OTLP__TIMEOUT_S": "2.5",
            "LIPSERVICE_SHUTDOWN_TIMEOUT_S": "3",
        }
    )
    assert settings.exporter.otlp.timeout_s == 2.5
    assert settings.shutdown_timeout_s == 3.0
    assert ignored_environment(SERVICE_LINKS) == sorted(SERVICE_LINKS)


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        # A typo in a real setting must not pass silently.
        ("LIPSERVICE_EXPORTER__OTLP__ENDPIONT", "exporter.otlp.endpiont: unknown key"),
        ("LIPSERVICE_RECEIVER__BOGUS", "receiver.bogus: unknown key"),
    ],
)
def test_a_wrong_field_of_a_real_section_is_still_an_error(variable, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(environ={**SERVICE_LINKS, variable: "x"})


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("LIPSERVICE_STORE__REDIS__URL", "store.redis.url"),
        ("LIPSERVICE_SHUTDOWN_TIMEOUT_S", "shutdown_timeout_s"),
        # A section needs a field; a scalar has none; unknown first levels are not ours.
        ("LIPSERVICE_EXPORTER", None),
        ("LIPSERVICE_SHUTDOWN_TIMEOUT_S__X", None),
        ("LIPSERVICE_ANALYZE__PORT", None),
        ("LIPSERVICE_TEST_LLM_KEY", None),
        ("OTHER_EXPORTER__TYPE", None),
    ],
)
def test_env_key_rule(name, key):
    assert env_key(name) == key
