"""Who may call the control plane: tokens, the exposure rule, the server's check of every call,
and the receiver side's channel.

Two credentials, because a sidecar's token must not be able to change the policy: the bearer
token admits Sync and the read-only calls, the admin token the calls that change the policy
(SetOverride, Regenerate). The health service is left open for probes.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from lipservice_otel.control.config import UNIX_PREFIX, ControlClientTlsConfig, ControlConfig
from lipservice_otel.receiver.security import BEARER_PREFIX, bearer_matches
from lipservice_otel.telemetry import Telemetry
from lipservice_otel.validation import ConfigError, require

log = logging.getLogger(__name__)

CONTROL_SERVICE_NAME = "lipservice.v1.ControlPlane"
# Calls that change the policy; any other ControlPlane method (a newer one included) is
# admitted by the bearer token only if listed here as read-only.
READ_ONLY_METHODS = frozenset(("Sync", "GetPolicy", "ListPatterns", "History", "Savings"))


@dataclass(frozen=True, slots=True)
class ControlTokens:
    bearer: str | None = field(default=None, repr=False)
    admin: str | None = field(default=None, repr=False)

    @property
    def any(self) -> bool:
        return self.bearer is not None or self.admin is not None


def _read_token(path: str, key: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    require(len(token) >= 16, key, f"the token in {path} must be at least 16 characters")
    return token


def control_tokens(control: ControlConfig) -> ControlTokens:
    """The tokens as configured, read from their files when given as `..._file`."""
    auth = control.auth
    bearer = auth.bearer_token
    if auth.bearer_token_file:
        bearer = _read_token(auth.bearer_token_file, "control.auth.bearer_token_file")
    admin = auth.admin_token
    if auth.admin_token_file:
        admin = _read_token(auth.admin_token_file, "control.auth.admin_token_file")
    return ControlTokens(bearer, admin)


def is_loopback(endpoint: str) -> bool:
    host = endpoint.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve to anything
        return False


def check_exposure(control: ControlConfig, tokens: ControlTokens) -> None:
    """Refuse to serve the control plane off the host with nobody checking who calls."""
    mutual_tls = control.tls.client_ca_file is not None
    if is_loopback(control.listen) or tokens.bearer is not None or mutual_tls:
        return
    if control.allow_insecure:
        log.warning(
            "control plane on %s without a bearer token or mutual TLS (control.allow_insecure):"
            " anyone who reaches it can change the policy and feed the analysis",
            control.listen,
        )
        return
    raise ConfigError(
        f"control.listen: {control.listen} is not a loopback address and the control plane "
        "would accept anyone: set control.auth.bearer_token (or bearer_token_file, or "
        "LIPSERVICE_CONTROL__AUTH__BEARER_TOKEN), or mutual TLS (control.tls.cert_file, "
        "key_file and client_ca_file), or listen on 127.0.0.1; control.allow_insecure: true "
        "accepts the risk"
    )


def admits_reading(tokens: ControlTokens, authorization: str | None) -> bool:
    """Whether an `Authorization` value may read (Sync, the read-only calls, the live page):
    either token, or anyone when no bearer token is set."""
    accepted = [t for t in (tokens.bearer, tokens.admin) if t is not None]
    return tokens.bearer is None or any(bearer_matches(authorization, t) for t in accepted)


def admits_changes(tokens: ControlTokens, authorization: str | None) -> bool:
    """Whether an `Authorization` value may change the policy: the admin token, or the bearer
    token when no admin token is set, or anyone when neither is."""
    required = tokens.admin if tokens.admin is not None else tokens.bearer
    return required is None or bearer_matches(authorization, required)


class ControlAuthInterceptor(grpc.aio.ServerInterceptor):
    """Checks the credential of every ControlPlane call before its handler runs."""

    def __init__(self, tokens: ControlTokens, telemetry: Telemetry) -> None:
        self._tokens = tokens
        self._telemetry = telemetry

    async def intercept_service(self, continuation, handler_call_details):
        service, _, method = handler_call_details.method.strip("/").partition("/")
        handler = await continuation(handler_call_details)
        if service != CONTROL_SERVICE_NAME or handler is None:
            return handler  # health checks stay open
        authorization = dict(handler_call_details.invocation_metadata or ()).get("authorization")
        refusal = self._refusal(method, authorization)
        if refusal is None:
            return handler
        code, details = refusal
        self._telemetry.counter(
            "lipservice_control_refused_calls", method=method, code=code.name
        ).inc()
        return _refusing(handler, code, details)

    def _refusal(
        self, method: str, authorization: str | None
    ) -> tuple[grpc.StatusCode, str] | None:
        if method in READ_ONLY_METHODS:
            if admits_reading(self._tokens, authorization):
                return None
            return grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token"
        if admits_changes(self._tokens, authorization):
            return None
        bearer = self._tokens.bearer
        if bearer is not None and bearer_matches(authorization, bearer):
            return (
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method} changes the policy: it needs control.auth.admin_token",
            )
        return grpc.StatusCode.UNAUTHENTICATED, "missing or wrong admin token"


def _refusing(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, details: str):
    async def refuse(_request, context):
        await context.abort(code, details)

    codecs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse, **codecs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, **codecs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse, **codecs)
    return grpc.unary_unary_rpc_method_handler(refuse, **codecs)


def peer_identity(context) -> str | None:
    """The verified client certificate's identity (SAN, else CN) under mutual TLS."""
    identities = context.peer_identities()
    if not identities:
        return None
    return identities[0].decode("utf-8", "replace")


def authorization_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"{BEARER_PREFIX}{token}"),) if token else ()


# gRPC refuses messages over 4 MiB by default. A policy costs ~50 bytes a rule (4 MiB at
# ~80,000 patterns) and a report up to control.report_limits: both ends take up to this.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
MESSAGE_SIZE_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
)


def client_channel(endpoint: str, tls: ControlClientTlsConfig) -> grpc.aio.Channel:
    """The receiver side's channel to control.connect. A Unix socket (the `--workers` parent)
    never leaves the host and has no certificate name to check, so it stays plaintext."""
    if not tls.enabled or endpoint.startswith(UNIX_PREFIX):
        return grpc.aio.insecure_channel(endpoint, options=MESSAGE_SIZE_OPTIONS)
    return grpc.aio.secure_channel(endpoint, client_credentials(tls), options=tls_options(tls))


def client_credentials(tls: ControlClientTlsConfig) -> grpc.ChannelCredentials:
    """The CA to trust (system roots when unset) and the client certificate, if any."""
    return grpc.ssl_channel_credentials(
        root_certificates=Path(tls.ca_file).read_bytes() if tls.ca_file else None,
        private_key=Path(tls.key_file).read_bytes() if tls.key_file else None,
        certificate_chain=Path(tls.cert_file).read_bytes() if tls.cert_file else None,
    )


def tls_options(tls: ControlClientTlsConfig) -> list[tuple[str, object]]:
    options: list[tuple[str, object]] = list(MESSAGE_SIZE_OPTIONS)
    if tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return options
