"""Settings of the live page: where it listens, how long a sign-in lasts, how much history the
charts keep."""

from __future__ import annotations

from dataclasses import dataclass, field

from lipservice_otel.receiver.config import ReceiverTlsConfig
from lipservice_otel.validation import check_endpoint, require

# Loopback, one port above the control plane's: nothing off the host sees the page until
# someone exposes it, with the control plane's tokens.
DEFAULT_UI_ENDPOINT = "127.0.0.1:4321"
DEFAULT_SESSION_TTL_S = 8 * 3600.0
DEFAULT_MAX_SESSIONS = 1000
DEFAULT_BUCKET_S = 60.0
DEFAULT_HISTORY_S = 3600.0
DEFAULT_SPARKLINE_PATTERNS = 100
DEFAULT_MAX_ANOMALIES = 500
MAX_BUCKETS = 10_000


@dataclass(frozen=True, slots=True)
class UiConfig:
    # HOST:PORT of the live page and its /api/...; "" turns it off. Binding anything but
    # loopback needs control.auth tokens (or control.allow_insecure).
    endpoint: str = DEFAULT_UI_ENDPOINT
    # How long a sign-in lasts, in seconds; the session is then forgotten.
    session_ttl_s: float = DEFAULT_SESSION_TTL_S
    # Sessions held at once; past it the oldest is signed out.
    max_sessions: int = DEFAULT_MAX_SESSIONS
    # Width of one point of the charts (kept vs dropped, sparklines), in seconds.
    bucket_s: float = DEFAULT_BUCKET_S
    # How far back the charts reach, in seconds.
    history_s: float = DEFAULT_HISTORY_S
    # Patterns with a sparkline: the loudest over history_s; the others show none.
    sparkline_patterns: int = DEFAULT_SPARKLINE_PATTERNS
    # Anomalies listed, newest first; older ones are forgotten.
    max_anomalies: int = DEFAULT_MAX_ANOMALIES
    # The same keys as receiver.tls: cert_file + key_file serve the page over HTTPS only.
    tls: ReceiverTlsConfig = field(default_factory=ReceiverTlsConfig)

    @property
    def enabled(self) -> bool:
        return bool(self.endpoint)

    def validate(self, key: str) -> None:
        if self.endpoint:
            check_endpoint(self.endpoint, f"{key}.endpoint")
        require(self.session_ttl_s > 0, f"{key}.session_ttl_s", "must be > 0")
        require(self.max_sessions >= 1, f"{key}.max_sessions", "must be >= 1")
        require(self.bucket_s > 0, f"{key}.bucket_s", "must be > 0")
        require(self.history_s >= self.bucket_s, f"{key}.history_s", "must be at least bucket_s")
        require(
            self.history_s / self.bucket_s <= MAX_BUCKETS,
            f"{key}.history_s",
            f"history_s / bucket_s must be <= {MAX_BUCKETS} points",
        )
        require(self.sparkline_patterns >= 0, f"{key}.sparkline_patterns", "must be >= 0")
        require(self.max_anomalies >= 0, f"{key}.max_anomalies", "must be >= 0")
        self.tls.validate(f"{key}.tls")
