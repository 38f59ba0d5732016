"""TLS material and bearer-token checks, shared by both receivers so they cannot differ."""

from __future__ import annotations

import hmac
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

from lipservice_otel.receiver.config import ReceiverTlsConfig

BEARER_PREFIX = "Bearer "


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an `Authorization` value carries `token`, compared in constant time so the
    answer's timing says nothing about how much of a guess was right."""
    if not authorization or not authorization.startswith(BEARER_PREFIX):
        return False
    presented = authorization[len(BEARER_PREFIX) :].strip().encode()
    return hmac.compare_digest(presented, token.encode())


@dataclass(frozen=True, slots=True)
class Sender:
    """Who an admitted export comes from, as far as its token says: the tenant whose
    `receiver.auth.tenant_tokens` token it carried, else None (the tenant is the header's)."""

    tenant: str | None = None


class SenderAuth:
    """The receivers' token check: `bearer_token` admits any sender, a tenant's token from
    `tenant_tokens` admits that tenant's senders as that tenant; neither set admits all."""

    def __init__(self, bearer_token: str | None, tenant_tokens: Mapping[str, str]) -> None:
        self._bearer_token = bearer_token
        self._tenant_tokens = tuple(tenant_tokens.items())

    @property
    def required(self) -> bool:
        return self._bearer_token is not None or bool(self._tenant_tokens)

    def admit(self, authorization: str | None) -> Sender | None:
        """The sender of an export with this `Authorization` value, or None to refuse it.
        Every token is compared (in constant time), so timing tells none of them apart."""
        if not self.required:
            return Sender()
        tenant = None
        for name, token in self._tenant_tokens:
            if bearer_matches(authorization, token):
                tenant = name
        shared = self._bearer_token is not None and bearer_matches(
            authorization, self._bearer_token
        )
        if tenant is not None:
            return Sender(tenant)
        return Sender() if shared else None


def http_ssl_context(tls: ReceiverTlsConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.client_ca_file:
        context.load_verify_locations(tls.client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def grpc_server_credentials(tls: ReceiverTlsConfig) -> grpc.ServerCredentials:
    client_ca = Path(tls.client_ca_file).read_bytes() if tls.client_ca_file else None
    return grpc.ssl_server_credentials(
        [(Path(tls.key_file).read_bytes(), Path(tls.cert_file).read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )
