"""sampler.implementation: which sampler runs, and what happens without the extension."""

from __future__ import annotations

import logging

import pytest

from lipservice_otel.app import cli
from lipservice_otel.policy.document import policy_from_document
from lipservice_otel.sampling import implementation
from lipservice_otel.sampling.aggregates import Aggregates
from lipservice_otel.sampling.compiled import CompiledSampler
from lipservice_otel.sampling.config import SamplerConfig
from lipservice_otel.settings import load_settings
from lipservice_otel.validation import ConfigError
from tests.support.native import native_module
from tests.support.running_service import make_settings


@pytest.fixture
def no_extension(monkeypatch):
    monkeypatch.setattr(implementation, "load_native", lambda: (None, "No module named _native"))


def build(choice: str):
    config = SamplerConfig(implementation=choice)
    return implementation.build_sampler(config, policy_from_document({}), Aggregates(10))


def test_the_extension_is_built():
    # Fails, not skips, under CI=true: the build must not lose the compiled path silently.
    assert native_module().template_of_text("took 5 ms", 2048) == "took <*> <*>"


def test_auto_and_compiled_take_the_extension():
    native_module()
    assert implementation.implementation_of(build("auto")) == "compiled"
    assert isinstance(build("compiled"), CompiledSampler)


def test_python_is_the_twin_even_with_the_extension():
    sampler = build("python")
    assert not isinstance(sampler, CompiledSampler)
    assert implementation.implementation_of(sampler) == "python"


def test_environment_forces_the_twin():
    settings = load_settings(environ={"LIPSERVICE_SAMPLER__IMPLEMENTATION": "python"})
    assert settings.sampler.implementation == "python"
    with pytest.raises(ConfigError, match=r"sampler\.implementation"):
        load_settings(environ={"LIPSERVICE_SAMPLER__IMPLEMENTATION": "fast"})


def test_auto_without_the_extension_warns_and_runs_python(no_extension, caplog):
    with caplog.at_level(logging.INFO, logger=implementation.__name__):
        sampler = build("auto")
    assert implementation.implementation_of(sampler) == "python"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "not available" in warnings[0].getMessage()
    assert "the python implementation" in caplog.text


def test_compiled_without_the_extension_refuses_to_start(no_extension, capsys):
    with pytest.raises(ConfigError, match=r"sampler\.implementation: compiled, but"):
        build("compiled")
    argv = ["serve", "--set", "sampler.implementation=compiled", "--set", "exporter.type=debug"]
    assert cli.main(argv) == cli.EXIT_CONFIG_ERROR
    assert "sampler.implementation: compiled" in capsys.readouterr().err


@pytest.mark.parametrize("choice", ["python", "auto"])
def test_the_metric_names_the_implementation(start_service, choice):
    if choice == "auto":
        native_module()
    running = start_service(make_settings(**{"sampler.implementation": choice}))
    expected = "python" if choice == "python" else "compiled"
    telemetry = running.service.telemetry
    assert telemetry.value("lipservice_sampler_implementation", implementation=expected) == 1
