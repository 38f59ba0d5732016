"""Settings of the savings report: an optional price that turns saved bytes into money."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lipservice_otel.report.savings import Price
from lipservice_otel.validation import require

DEFAULT_CURRENCY = "USD"
# A label beside the figures, not a lookup: any short code or symbol (USD, EUR, credits).
MAX_CURRENCY_CHARS = 16


@dataclass(frozen=True, slots=True)
class ReportConfig:
    # What one GiB (2**30 bytes) sent to the backend costs; 0: no price, bytes only.
    price_per_gib: float = 0.0
    # The label of that price's currency in the report.
    currency: str = DEFAULT_CURRENCY

    def validate(self, key: str) -> None:
        require(
            math.isfinite(self.price_per_gib) and self.price_per_gib >= 0,
            f"{key}.price_per_gib",
            f"must be a number >= 0 (0: no price), got {self.price_per_gib!r}",
        )
        require(
            0 < len(self.currency.strip()) <= MAX_CURRENCY_CHARS,
            f"{key}.currency",
            f"must be 1-{MAX_CURRENCY_CHARS} characters, got {self.currency!r}",
        )

    @property
    def price(self) -> Price:
        return Price(self.price_per_gib, self.currency.strip())
