"""Where the configured policy comes from: a watched file or an inline document."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lipservice_otel.policy.document import PolicyError, policy_from_document
from lipservice_otel.validation import ConfigError, require


@dataclass(frozen=True, slots=True)
class PolicySourceConfig:
    # YAML policy document re-read whenever it changes; when unset the `document` below is used.
    file: str | None = None
    # How often the file's modification time is checked, in seconds.
    reload_interval_s: float = 1.0
    # An inline policy document (same schema as the file; see docs/sampling.md).
    document: dict[str, Any] = field(default_factory=dict)

    def validate(self, key: str) -> None:
        require(self.reload_interval_s > 0, f"{key}.reload_interval_s", "must be > 0")
        try:
            policy_from_document(self.document)
        except PolicyError as exc:
            raise ConfigError(f"{key}.document.{exc}") from None
