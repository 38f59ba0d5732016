"""What every component's `validate()` uses: the error that names a YAML key, and its checks."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting is missing, unknown or out of range; the message names its YAML key."""


def require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


def check_endpoint(endpoint: str, key: str) -> None:
    host, sep, port = endpoint.rpartition(":")
    require(
        bool(sep) and port.isdigit() and 0 <= int(port) <= 65535,
        key,
        f"expected HOST:PORT with a port 0-65535, got {endpoint!r}",
    )
    require(bool(host), key, f"expected HOST:PORT with a host, got {endpoint!r}")
