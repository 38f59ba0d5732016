"""report.* settings: loaded like every section, bad values named by their key."""

from __future__ import annotations

import pytest

from lipservice_otel.report.config import ReportConfig
from lipservice_otel.report.savings import Price
from lipservice_otel.settings import load_settings
from lipservice_otel.validation import ConfigError


def test_the_price_comes_from_the_settings():
    settings = load_settings(
        environ={"LIPSERVICE_REPORT__CURRENCY": "EUR"},
        overrides={"report.price_per_gib": 0.3},
    )
    assert settings.report == ReportConfig(0.3, "EUR")
    assert settings.report.price == Price(0.3, "EUR")
    assert load_settings(environ={}).report.price == Price(0.0, "USD")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"report.price_per_gib": -1}, "report.price_per_gib: must be a number >= 0"),
        ({"report.price_per_gib": float("nan")}, "report.price_per_gib: must be a number >= 0"),
        ({"report.price_per_gib": float("inf")}, "report.price_per_gib: must be a number >= 0"),
        ({"report.price_per_gib": "cheap"}, "report.price_per_gib: expected a number"),
        ({"report.currency": ""}, "report.currency: must be 1-16 characters"),
        ({"report.currency": "x" * 17}, "report.currency: must be 1-16 characters"),
        ({"report.prize_per_gib": 1}, "report.prize_per_gib: unknown key"),
    ],
)
def test_bad_values_name_their_key(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings(environ={}, overrides=overrides)
