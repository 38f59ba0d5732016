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
