"""Settings of the control plane: where `analyze` listens and where `serve` connects."""

from __future__ import annotations

from dataclasses import dataclass

from lipservice_otel.validation import check_endpoint, require

DEFAULT_CONTROL_LISTEN = "0.0.0.0:4320"


@dataclass(frozen=True, slots=True)
class ControlConfig:
    # `analyze` serves the control plane (Sync stream, admin calls) here.
    listen: str = DEFAULT_CONTROL_LISTEN
    # `serve` connects to a remote analysis service at HOST:PORT instead of embedding one.
    connect: str | None = None
    # Longest wait between reconnection attempts, in seconds.
    reconnect_max_s: float = 30.0
    # The receiver keeps its last policy here, so a restart without the analyzer resumes it.
    policy_cache_file: str | None = None

    def validate(self, key: str) -> None:
        check_endpoint(self.listen, f"{key}.listen")
        if self.connect is not None:
            check_endpoint(self.connect, f"{key}.connect")
        require(self.reconnect_max_s > 0, f"{key}.reconnect_max_s", "must be > 0")
