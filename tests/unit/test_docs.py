"""The README's reference tables cannot drift from the code."""

from __future__ import annotations

import dataclasses
import re
import typing
import urllib.request
from pathlib import Path

import lipservice_otel
from lipservice_otel.settings import Settings
from lipservice_otel.telemetry import METRICS
from tests.conftest import make_settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def setting_defaults(cls=Settings, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        if dataclasses.is_dataclass(hints[f.name]):
            yield from setting_defaults(hints[f.name], key + ".")
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            yield key, default


def readme_table_defaults() -> dict[str, str]:
    rows = re.findall(r"^\| `([a-z_.]+)` \| [^|]+(?:\\\|[^|]+)* \| `([^`]*)` \|", README, re.M)
    return dict(rows)


def as_yaml(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if value == {}:
        return "{}"
    return str(value)


def test_every_setting_is_documented_with_its_default():
    documented = readme_table_defaults()
    for key, default in setting_defaults():
        assert key in documented, f"{key} missing from the README configuration table"
        assert documented[key] == as_yaml(default), key
    assert set(documented) == {key for key, _ in setting_defaults()}


def test_every_metric_is_documented_and_exposed(start_service, sink):
    running = start_service(make_settings(sink.endpoint))
    for spec in METRICS:
        assert f"| `{spec.name}` | {spec.kind} | {spec.unit} |" in README, spec.name
    url = f"http://127.0.0.1:{running.service.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        exposed = response.read().decode()
    for spec in METRICS:
        assert f"# HELP {spec.name}" in exposed, spec.name


def test_public_api_is_complete():
    for name in lipservice_otel.__all__:
        assert hasattr(lipservice_otel, name), name
