"""Where a record's tenant comes from: `analysis.tenant_key`, parsed.

A tenant is read either from a resource attribute (`resource:k8s.namespace.name`, per
ResourceLogs, as service.name is) or from a request header / gRPC metadata key
(`header:x-scope-orgid`, per request, as Loki and Mimir do). A record without it belongs to
DEFAULT_TENANT; the tenants beyond `analysis.max_tenants` a process has seen count as
OTHER_TENANT, so a sender cannot grow the counting keys without bound by inventing tenants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from lipservice_otel.validation import ConfigError

DEFAULT_TENANT = "default"
OTHER_TENANT = "other"
DEFAULT_MAX_TENANTS = 100
# A longer name counts as OTHER_TENANT: names are metric label values and counting keys.
MAX_TENANT_CHARS = 256

TenantKind = Literal["resource", "header"]

# One name must work for both receivers: a gRPC metadata key ([0-9a-z_.-], lowercase) is also
# an HTTP header token, the reverse is not true.
_HEADER_NAME = re.compile(r"[0-9a-z_.-]+")
# Binary metadata (`-bin`) carries bytes, not a name; `grpc-` keys are gRPC's own.
_BINARY_SUFFIX = "-bin"
_RESERVED_PREFIX = "grpc-"


@dataclass(frozen=True, slots=True)
class TenantKey:
    kind: TenantKind
    name: str


def parse_tenant_key(text: str, field: str) -> TenantKey | None:
    """`""` -> None (no tenants); `resource:<attribute>` or `header:<name>`; else ConfigError."""
    if text == "":
        return None
    kind, sep, name = text.partition(":")
    if not sep or kind not in ("resource", "header"):
        raise ConfigError(
            f"{field}: expected 'resource:<attribute>' or 'header:<name>', got {text!r}"
        )
    if kind == "resource":
        if not name or name != name.strip():
            raise ConfigError(
                f"{field}: expected a resource attribute name after 'resource:', got {text!r}"
            )
        return TenantKey("resource", name)
    header = name.lower()
    if (
        not _HEADER_NAME.fullmatch(header)
        or header.endswith(_BINARY_SUFFIX)
        or header.startswith(_RESERVED_PREFIX)
    ):
        raise ConfigError(
            f"{field}: expected a header / gRPC metadata name of letters, digits, '-', '_' "
            f"or '.' (not ending in '-bin', not starting with 'grpc-'), got {text!r}"
        )
    return TenantKey("header", header)


def resource_tenant(attributes, key: str) -> str:
    """The string value of the resource attribute `key` ("" when absent or not a string),
    read as service.name is: its first occurrence."""
    for kv in attributes:
        if kv.key == key:
            return kv.value.string_value
    return ""


class TenantNames:
    """The tenant names one process counts under: the first `max_tenants` it sees keep their
    name for its lifetime, later ones are OTHER_TENANT (bounded memory and label values)."""

    def __init__(self, max_tenants: int) -> None:
        self._max_tenants = max_tenants
        self._names: set[str] = set()

    def name_of(self, value: str | None) -> tuple[str, bool]:
        """The name to count a tenant as sent under, and whether the cap overflowed it."""
        if not value:
            return DEFAULT_TENANT, False
        if value in self._names:
            return value, False
        if len(self._names) >= self._max_tenants or len(value) > MAX_TENANT_CHARS:
            return OTHER_TENANT, True
        self._names.add(value)
        return value, False
