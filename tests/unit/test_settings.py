"""Settings: defaults, YAML < env < flags, and errors that name the key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lipservice_otel.receiver.config import DEFAULT_GRPC_ENDPOINT, DEFAULT_MAX_RECV_MSG_SIZE_MIB
from lipservice_otel.sampling.config import DEFAULT_MAX_BODY_CHARS
from lipservice_otel.settings import load_settings
from lipservice_otel.validation import ConfigError


def test_defaults_are_the_named_constants():
    settings = load_settings(environ={})
    assert settings.receiver.grpc.endpoint == DEFAULT_GRPC_ENDPOINT == "0.0.0.0:4317"
    assert settings.receiver.grpc.max_recv_msg_size_mib == DEFAULT_MAX_RECV_MSG_SIZE_MIB == 16
    assert settings.sampler.max_body_chars == DEFAULT_MAX_BODY_CHARS == 2048
    assert settings.exporter.type == "debug"
    assert settings.telemetry.metrics_endpoint == "0.0.0.0:8888"


def test_yaml_then_env_then_flags(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "exporter:\n  type: otlp\n  otlp:\n    endpoint: collector:4317\n    timeout_s: 3\n"
        "sampler:\n  max_body_chars: 512\n"
    )
    environ = {
        "LIPSERVICE_EXPORTER__OTLP__TIMEOUT_S": "7.5",
        "LIPSERVICE_EXPORTER__OTLP__INSECURE": "false",
        "UNRELATED": "x",
    }
    settings = load_settings(str(path), environ=environ, overrides={"sampler.max_body_chars": 4096})
    assert settings.exporter.type == "otlp"
    assert settings.exporter.otlp.endpoint == "collector:4317"
    assert settings.exporter.otlp.timeout_s == 7.5
    assert settings.exporter.otlp.insecure is False
    assert settings.sampler.max_body_chars == 4096


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"receiver.grpc.endpoint": "4317"}, "receiver.grpc.endpoint: expected HOST:PORT"),
        ({"receiver.grpc.endpoint": "x:99999"}, "receiver.grpc.endpoint"),
        ({"receiver.grpc.max_recv_msg_size_mib": 0}, "receiver.grpc.max_recv_msg_size_mib"),
        ({"receiver.grpc.max_recv_msg_size_mib": "big"}, "expected an integer"),
        ({"exporter.type": "kafka"}, "exporter.type: must be one of debug, otlp"),
        ({"exporter.otlp.compression": "zstd"}, "exporter.otlp.compression: must be one of"),
        ({"exporter.otlp.insecure": "yes please"}, "exporter.otlp.insecure: expected true or"),
        ({"exporter.queue.consumers": 0}, "exporter.queue.consumers: must be 1-64"),
        ({"exporter.retry.max_interval_s": 0.01}, "exporter.retry.max_interval_s"),
        ({"exporter.otlp.headers": {"Authorization": "x"}}, "lowercase"),
        ({"sampler.max_body_chars": 3}, "sampler.max_body_chars: must be >= 16"),
        ({"sampler.colour": "red"}, "sampler.colour: unknown key (allowed:"),
        ({"policy.document": {"default_rate": 2}}, "policy.document.default_rate: must be"),
        ({"policy.document": {"mode": "loud"}}, "policy.document.mode: must be one of"),
        ({"telemetry.log_level": "chatty"}, "telemetry.log_level: must be one of"),
        ({"analysis.max_new_patterns_per_cycle": 0}, "analysis.max_new_patterns_per_cycle"),
        ({"store.history_rules_versions": 0}, "store.history_rules_versions: must be >= 1"),
    ],
)
def test_invalid_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={}, overrides=overrides)
    assert message in str(raised.value)


def test_unreadable_or_malformed_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(str(tmp_path / "missing.yaml"), environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("receiver: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(str(bad), environ={})
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_settings(str(scalar), environ={})


def test_cli_exits_non_zero_naming_the_field(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("exporter:\n  type: carrier-pigeon\n")
    result = subprocess.run(
        [sys.executable, "-m", "lipservice_otel", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "exporter.type: must be one of debug, otlp" in result.stderr
    assert "carrier-pigeon" in result.stderr


def test_cli_rejects_malformed_set_flag():
    result = subprocess.run(
        [sys.executable, "-m", "lipservice_otel", "serve", "--set", "novalue"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--set: expected KEY=VALUE" in result.stderr


def test_cli_exits_non_zero_on_a_damaged_snapshot(tmp_path):
    snapshot = tmp_path / "analysis.snapshot"
    snapshot.write_bytes(b"garbage")
    command = [sys.executable, "-m", "lipservice_otel", "analyze", "--listen", "127.0.0.1:0"]
    result = subprocess.run(
        [*command, "--set", f"store.snapshot_file={snapshot}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "store.snapshot_file" in result.stderr and "not a lipservice snapshot" in result.stderr
