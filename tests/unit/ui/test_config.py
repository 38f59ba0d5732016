"""ui settings: validated with the key named, and the page off loopback only behind a token."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from lipservice_otel.control.config import ControlConfig
from lipservice_otel.control.security import ControlTokens
from lipservice_otel.settings import load_settings
from lipservice_otel.ui.access import check_ui_exposure
from lipservice_otel.ui.config import DEFAULT_UI_ENDPOINT, UiConfig
from lipservice_otel.validation import ConfigError


def test_defaults_listen_on_loopback():
    ui = load_settings(environ={}).ui
    assert ui.endpoint == DEFAULT_UI_ENDPOINT == "127.0.0.1:4321"
    assert ui.enabled
    assert not load_settings(environ={}, overrides={"ui.endpoint": ""}).ui.enabled


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ui.endpoint": "4321"}, "ui.endpoint: expected HOST:PORT"),
        ({"ui.session_ttl_s": 0}, "ui.session_ttl_s: must be > 0"),
        ({"ui.max_sessions": 0}, "ui.max_sessions: must be >= 1"),
        ({"ui.bucket_s": 0}, "ui.bucket_s: must be > 0"),
        ({"ui.history_s": 10, "ui.bucket_s": 60}, "ui.history_s: must be at least bucket_s"),
        ({"ui.history_s": 86400 * 30, "ui.bucket_s": 1}, "ui.history_s: history_s / bucket_s"),
        ({"ui.sparkline_patterns": -1}, "ui.sparkline_patterns: must be >= 0"),
        ({"ui.max_anomalies": -1}, "ui.max_anomalies: must be >= 0"),
        ({"ui.tls.cert_file": "/nonexistent.pem"}, "ui.tls"),
        ({"ui.colour": "red"}, "ui.colour: unknown key"),
    ],
)
def test_bad_values_name_their_key(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings(environ={}, overrides=overrides)


def test_off_loopback_the_page_needs_a_bearer_token(caplog):
    exposed = UiConfig(endpoint="0.0.0.0:4321")
    with pytest.raises(ConfigError, match=r"ui.endpoint: 0.0.0.0:4321 is not a loopback"):
        check_ui_exposure(exposed, ControlConfig(), ControlTokens())
    with pytest.raises(ConfigError):  # the admin token alone leaves reading open
        check_ui_exposure(exposed, ControlConfig(), ControlTokens(admin="a" * 16))
    check_ui_exposure(exposed, ControlConfig(), ControlTokens(bearer="b" * 16))
    check_ui_exposure(UiConfig(endpoint="[::1]:4321"), ControlConfig(), ControlTokens())
    check_ui_exposure(UiConfig(endpoint=""), ControlConfig(), ControlTokens())
    with caplog.at_level(logging.WARNING):
        check_ui_exposure(exposed, ControlConfig(allow_insecure=True), ControlTokens())
    assert "without a control.auth bearer token" in caplog.text


def test_analyze_refuses_an_exposed_page_without_tokens_with_exit_2():
    command = [sys.executable, "-m", "lipservice_otel", "analyze", "--listen", "127.0.0.1:0"]
    command += ["--set", "telemetry.metrics_endpoint=", "--set", "ui.endpoint=0.0.0.0:0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "configuration error: ui.endpoint: 0.0.0.0:0 is not a loopback address" in result.stderr
