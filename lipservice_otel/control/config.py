"""Settings of the control plane: where `analyze` listens and where `serve` connects, who may
call it, and how much one receiver's report may claim."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from lipservice_otel.receiver.config import ReceiverTlsConfig
from lipservice_otel.sampling.aggregates import MAX_EXAMPLE_CHARS, MAX_EXAMPLES_PER_PATTERN
from lipservice_otel.validation import check_endpoint, require

# Loopback: the sidecar and single-process cases need nothing more, and nothing off the host
# can steer the policy until someone chooses to expose it (with credentials).
DEFAULT_CONTROL_LISTEN = "127.0.0.1:4320"
# `serve --workers` children reach their parent on a Unix socket: `unix:PATH`.
UNIX_PREFIX = "unix:"
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True, slots=True)
class ControlAuthConfig:
    # Admits Sync (receivers' reports) and the read-only calls (GetPolicy, ListPatterns,
    # History); a receiver following `control.connect` sends it. Unset: no token is asked.
    bearer_token: str | None = field(default=None, repr=False)
    # A file holding bearer_token (a mounted Secret), so the token stays out of argv.
    bearer_token_file: str | None = None
    # Admits SetOverride and Regenerate, which change the policy; unset: bearer_token does.
    # A sidecar holding only the bearer token then cannot steer the policy.
    admin_token: str | None = field(default=None, repr=False)
    # A file holding admin_token.
    admin_token_file: str | None = None

    def validate(self, key: str) -> None:
        for name in ("bearer_token", "admin_token"):
            value = getattr(self, name)
            path = getattr(self, f"{name}_file")
            require(
                value is None or path is None,
                f"{key}.{name}_file",
                f"set {name} or {name}_file, not both",
            )
            require(
                value is None or len(value) >= MIN_TOKEN_CHARS,
                f"{key}.{name}",
                f"must be at least {MIN_TOKEN_CHARS} characters",
            )
            require(
                path is None or os.path.isfile(path), f"{key}.{name}_file", f"no such file: {path}"
            )


@dataclass(frozen=True, slots=True)
class ControlClientTlsConfig:
    # Speak TLS to control.connect (system roots unless ca_file is set).
    enabled: bool = False
    # PEM CA bundle the control plane's certificate must chain to.
    ca_file: str | None = None
    # Client certificate and key, for a control plane that asks for mutual TLS.
    cert_file: str | None = None
    key_file: str | None = None
    # The name the server certificate must carry, when it is not control.connect's host.
    server_name: str | None = None

    def validate(self, key: str) -> None:
        require(
            (self.cert_file is None) == (self.key_file is None),
            f"{key}.cert_file",
            "cert_file and key_file go together",
        )
        configured = self.ca_file or self.cert_file or self.server_name
        require(
            self.enabled or not configured,
            f"{key}.enabled",
            "ca_file, cert_file and server_name are used only with enabled: true",
        )
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            require(path is None or os.path.isfile(path), f"{key}.{name}", f"no such file: {path}")


@dataclass(frozen=True, slots=True)
class ReportLimitsConfig:
    # A Sync report beyond any of these is refused whole (INVALID_ARGUMENT, counted in
    # lipservice_control_refused_reports): one receiver, or whoever holds its token, cannot
    # make the analysis learn from invented or oversized input. The defaults sit above what a
    # receiver with default settings sends (sampler.max_aggregate_keys: 100000).
    max_counts_per_report: int = 200_000
    max_patterns_per_report: int = 100_000
    max_examples_per_pattern: int = MAX_EXAMPLES_PER_PATTERN
    max_example_chars: int = MAX_EXAMPLE_CHARS
    # Templates are signed from at most sampler.max_body_chars characters, a little more
    # once masked: raise this with that setting.
    max_template_chars: int = 16_384
    # Service names, pattern ids, severity buckets and receiver ids.
    max_name_chars: int = 256
    # How far in the future a report's interval may end (receivers' clocks drift a little).
    max_clock_skew_s: float = 60.0

    def validate(self, key: str) -> None:
        for name in (
            "max_counts_per_report",
            "max_patterns_per_report",
            "max_examples_per_pattern",
            "max_example_chars",
            "max_template_chars",
            "max_name_chars",
        ):
            require(getattr(self, name) >= 1, f"{key}.{name}", "must be >= 1")
        require(self.max_clock_skew_s >= 0, f"{key}.max_clock_skew_s", "must be >= 0")


@dataclass(frozen=True, slots=True)
class ControlConfig:
    # `analyze` (and `serve` with embedded analysis) serves the control plane here. Binding
    # anything but loopback needs auth.bearer_token or mutual TLS (or allow_insecure).
    listen: str = DEFAULT_CONTROL_LISTEN
    # `serve` connects to a remote analysis service at HOST:PORT instead of embedding one.
    connect: str | None = None
    # Longest wait between reconnection attempts, in seconds.
    reconnect_max_s: float = 30.0
    # The receiver keeps its last policy here, so a restart without the analyzer resumes it.
    policy_cache_file: str | None = None
    # Bind a non-loopback `listen` with neither a token nor mutual TLS anyway (a warning is
    # logged at every start): anyone reaching the port can then change the policy.
    allow_insecure: bool = False
    # Send each receiver the rules of the patterns it reports, not the whole policy: the
    # bytes and the decoding on every sidecar stay at its own patterns' share. A pattern it
    # has not reported yet is new to it (kept whole) until its next report.
    policy_slices: bool = False
    auth: ControlAuthConfig = field(default_factory=ControlAuthConfig)
    # Server side: the same keys as receiver.tls (cert_file, key_file, client_ca_file).
    tls: ReceiverTlsConfig = field(default_factory=ReceiverTlsConfig)
    # Client side, for `serve` following control.connect.
    client_tls: ControlClientTlsConfig = field(default_factory=ControlClientTlsConfig)
    report_limits: ReportLimitsConfig = field(default_factory=ReportLimitsConfig)

    def validate(self, key: str) -> None:
        check_endpoint(self.listen, f"{key}.listen")
        if self.connect is not None and not self.connect.startswith(UNIX_PREFIX):
            check_endpoint(self.connect, f"{key}.connect")
        require(self.reconnect_max_s > 0, f"{key}.reconnect_max_s", "must be > 0")
        self.auth.validate(f"{key}.auth")
        self.tls.validate(f"{key}.tls")
        self.client_tls.validate(f"{key}.client_tls")
        self.report_limits.validate(f"{key}.report_limits")
