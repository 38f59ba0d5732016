"""Settings of the OTLP front doors: gRPC and HTTP listeners, TLS, bearer auth, record limits."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from lipservice_otel.sampling.tenant import MAX_TENANT_CHARS
from lipservice_otel.validation import check_endpoint, require

DEFAULT_GRPC_ENDPOINT = "0.0.0.0:4317"
DEFAULT_MAX_RECV_MSG_SIZE_MIB = 16
DEFAULT_HTTP_ENDPOINT = "0.0.0.0:4318"
DEFAULT_MAX_LOG_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class GrpcReceiverConfig:
    # Address the OTLP/gRPC LogsService listens on. Port 0 picks a free port.
    endpoint: str = DEFAULT_GRPC_ENDPOINT
    # Largest accepted request, in MiB, before decompression limits apply.
    max_recv_msg_size_mib: int = DEFAULT_MAX_RECV_MSG_SIZE_MIB
    # Bind with SO_REUSEPORT so several processes share the port (`serve --workers` sets it);
    # off by default, so a second process on a taken port fails instead of sharing it.
    reuse_port: bool = False

    def validate(self, key: str) -> None:
        check_endpoint(self.endpoint, f"{key}.endpoint")
        require(
            1 <= self.max_recv_msg_size_mib <= 1024,
            f"{key}.max_recv_msg_size_mib",
            f"must be 1-1024, got {self.max_recv_msg_size_mib}",
        )


@dataclass(frozen=True, slots=True)
class HttpReceiverConfig:
    # Address the OTLP/HTTP server listens on (POST /v1/logs); empty string disables it.
    endpoint: str = DEFAULT_HTTP_ENDPOINT
    # Largest accepted body in MiB, both as sent and after gzip decompression.
    max_request_body_mib: int = 16
    # Bind with SO_REUSEPORT, as receiver.grpc.reuse_port.
    reuse_port: bool = False

    def validate(self, key: str) -> None:
        if self.endpoint:
            check_endpoint(self.endpoint, f"{key}.endpoint")
        require(
            1 <= self.max_request_body_mib <= 1024,
            f"{key}.max_request_body_mib",
            f"must be 1-1024, got {self.max_request_body_mib}",
        )


@dataclass(frozen=True, slots=True)
class ReceiverTlsConfig:
    # PEM certificate chain and private key; set both and both receivers speak TLS only.
    cert_file: str | None = None
    key_file: str | None = None
    # PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS).
    client_ca_file: str | None = None

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None

    def validate(self, key: str) -> None:
        require(
            (self.cert_file is None) == (self.key_file is None),
            f"{key}.cert_file",
            "cert_file and key_file go together",
        )
        require(
            self.client_ca_file is None or self.enabled,
            f"{key}.client_ca_file",
            "mutual TLS needs cert_file and key_file too",
        )
        for name in ("cert_file", "key_file", "client_ca_file"):
            path = getattr(self, name)
            require(path is None or os.path.isfile(path), f"{key}.{name}", f"no such file: {path}")


@dataclass(frozen=True, slots=True)
class ReceiverAuthConfig:
    # When set, every export must carry `Authorization: Bearer <token>` (gRPC metadata or HTTP
    # header); others get UNAUTHENTICATED / 401. Health checks need no token.
    bearer_token: str | None = field(default=None, repr=False)
    # Tenant name -> a token of its own (each also admits exports). A sender presenting one
    # is that tenant, whatever tenant header or resource attribute it sends (with
    # analysis.tenant_key set; see docs/sampling.md#tenants).
    tenant_tokens: dict[str, str] = field(default_factory=dict, repr=False)

    def validate(self, key: str) -> None:
        require(
            self.bearer_token is None or len(self.bearer_token) >= 16,
            f"{key}.bearer_token",
            "must be at least 16 characters",
        )
        field_key = f"{key}.tenant_tokens"
        for tenant, token in self.tenant_tokens.items():
            require(
                isinstance(tenant, str) and 0 < len(tenant) <= MAX_TENANT_CHARS,
                field_key,
                f"tenant names must be 1-{MAX_TENANT_CHARS} characters, got {tenant!r}",
            )
            require(
                isinstance(token, str) and len(token) >= 16,
                f"{field_key}.{tenant}",
                "must be a string of at least 16 characters",
            )
        tokens = list(self.tenant_tokens.values())
        require(len(set(tokens)) == len(tokens), field_key, "two tenants share a token")
        require(
            self.bearer_token not in tokens,
            field_key,
            "a tenant's token must differ from bearer_token",
        )


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    grpc: GrpcReceiverConfig = field(default_factory=GrpcReceiverConfig)
    http: HttpReceiverConfig = field(default_factory=HttpReceiverConfig)
    # TLS and authentication apply to both receivers alike.
    tls: ReceiverTlsConfig = field(default_factory=ReceiverTlsConfig)
    auth: ReceiverAuthConfig = field(default_factory=ReceiverAuthConfig)
    # A record whose body serializes larger than this is refused (OTLP partial success), so
    # one oversized line cannot block a downstream with a request size limit.
    max_log_body_bytes: int = DEFAULT_MAX_LOG_BODY_BYTES

    def validate(self, key: str) -> None:
        require(self.max_log_body_bytes >= 1024, f"{key}.max_log_body_bytes", "must be >= 1024")
        self.grpc.validate(f"{key}.grpc")
        self.http.validate(f"{key}.http")
        self.tls.validate(f"{key}.tls")
        self.auth.validate(f"{key}.auth")
