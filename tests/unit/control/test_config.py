"""Control-plane settings: tokens, their files, TLS keys, and the exposure rule."""

from __future__ import annotations

import logging
import re

import pytest

from lipservice_otel.control.security import check_exposure, control_tokens, is_loopback
from lipservice_otel.settings import load_settings
from lipservice_otel.validation import ConfigError

TOKEN = "bearer-token-of-32-characters-xx"
ADMIN = "admin-token-of-32-characters-xxx"


def control(environ=None, **overrides):
    return load_settings(environ=environ or {}, overrides=overrides).control


def test_listens_on_loopback_by_default():
    settings = control()
    assert settings.listen == "127.0.0.1:4320"
    check_exposure(settings, control_tokens(settings))


def test_the_env_form_sets_the_token():
    settings = control({"LIPSERVICE_CONTROL__AUTH__BEARER_TOKEN": TOKEN})
    assert control_tokens(settings).bearer == TOKEN
    assert TOKEN not in repr(settings), "tokens stay out of logs and tracebacks"


def test_tokens_come_from_files(tmp_path):
    bearer, admin = tmp_path / "bearer", tmp_path / "admin"
    bearer.write_text(TOKEN + "\n")  # as `echo` or a Secret editor leaves it
    admin.write_text(ADMIN)
    settings = control(
        **{
            "control.auth.bearer_token_file": str(bearer),
            "control.auth.admin_token_file": str(admin),
        }
    )
    tokens = control_tokens(settings)
    assert (tokens.bearer, tokens.admin) == (TOKEN, ADMIN)


def test_a_short_token_in_a_file_stops_the_start(tmp_path):
    short = tmp_path / "bearer"
    short.write_text("short")
    settings = control(**{"control.auth.bearer_token_file": str(short)})
    with pytest.raises(ConfigError, match=re.escape("control.auth.bearer_token_file")):
        control_tokens(settings)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"control.auth.bearer_token": "short"}, "control.auth.bearer_token"),
        ({"control.auth.admin_token": "short"}, "control.auth.admin_token"),
        (
            {"control.auth.bearer_token": TOKEN, "control.auth.bearer_token_file": __file__},
            "control.auth.bearer_token_file",
        ),
        ({"control.auth.admin_token_file": "/no/such/file"}, "control.auth.admin_token_file"),
        ({"control.tls.cert_file": __file__}, "control.tls.cert_file"),
        ({"control.client_tls.ca_file": __file__}, "control.client_tls.enabled"),
        (
            {"control.client_tls.enabled": True, "control.client_tls.cert_file": __file__},
            "control.client_tls.cert_file",
        ),
        ({"control.report_limits.max_name_chars": 0}, "control.report_limits.max_name_chars"),
        ({"control.connect": "analyzer"}, "control.connect"),
    ],
)
def test_bad_values_name_their_key(overrides, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        control(**overrides)


@pytest.mark.parametrize(
    ("listen", "loopback"),
    [
        ("127.0.0.1:4320", True),
        ("127.0.0.2:4320", True),
        ("localhost:4320", True),
        ("[::1]:4320", True),
        ("0.0.0.0:4320", False),
        ("[::]:4320", False),
        ("10.1.2.3:4320", False),
        ("analyzer.internal:4320", False),
    ],
)
def test_loopback_addresses(listen, loopback):
    assert is_loopback(listen) is loopback


def test_exposed_without_credentials_stops_the_start_saying_how_to_fix_it():
    settings = control(**{"control.listen": "0.0.0.0:4320"})
    with pytest.raises(ConfigError) as refused:
        check_exposure(settings, control_tokens(settings))
    message = str(refused.value)
    assert message.startswith("control.listen:")
    for fix in ("control.auth.bearer_token", "client_ca_file", "127.0.0.1", "allow_insecure"):
        assert fix in message


def test_exposed_with_a_token_or_mutual_tls_is_fine(tmp_path):
    with_token = control(**{"control.listen": "0.0.0.0:4320", "control.auth.bearer_token": TOKEN})
    check_exposure(with_token, control_tokens(with_token))
    pem = tmp_path / "any.pem"
    pem.write_text("-")  # only its existence is checked before the server starts
    mutual = control(
        **{
            "control.listen": "0.0.0.0:4320",
            **{f"control.tls.{k}": str(pem) for k in ("cert_file", "key_file", "client_ca_file")},
        }
    )
    check_exposure(mutual, control_tokens(mutual))


def test_an_admin_token_alone_does_not_guard_sync():
    settings = control(**{"control.listen": "0.0.0.0:4320", "control.auth.admin_token": ADMIN})
    with pytest.raises(ConfigError):
        check_exposure(settings, control_tokens(settings))


def test_allow_insecure_warns(caplog):
    settings = control(**{"control.listen": "0.0.0.0:4320", "control.allow_insecure": True})
    with caplog.at_level(logging.WARNING, logger="lipservice_otel.control.security"):
        check_exposure(settings, control_tokens(settings))
    assert "anyone who reaches it can change the policy" in caplog.text
