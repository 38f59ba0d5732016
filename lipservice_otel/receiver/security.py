"""TLS material and bearer-token checks, shared by both receivers so they cannot differ."""

from __future__ import annotations

import hmac
import ssl
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
