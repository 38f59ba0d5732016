"""Loads the settings: YAML file + environment + flags into each component's own config.

Each component keeps its frozen config dataclass and `validate()` beside it (receiver/config.py,
sampling/config.py, ...); this module only assembles them.

Precedence (lowest to highest): the defaults below, the YAML file (`--config`), environment
variables `LIPSERVICE_<SECTION>__<FIELD>` (double underscore between levels, e.g.
`LIPSERVICE_EXPORTER__OTLP__ENDPOINT`), then command-line flags. Every value is checked on
load; a bad one raises `ConfigError` naming its YAML key and what is allowed. Unknown keys are
rejected so a typo cannot silently fall back to a default.

The environment also holds variables nobody wrote for us: Kubernetes injects
`LIPSERVICE_ANALYZE_PORT=tcp://...` for a Service named `lipservice-analyze`. So a variable is
read only when it can be a setting (see `env_key`); the others are ignored, never an error.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.control.config import ControlConfig
from lipservice_otel.exporter.config import POSTHOG_API_KEY_ENV, ExporterConfig
from lipservice_otel.policy.config import PolicySourceConfig
from lipservice_otel.receiver.config import ReceiverConfig
from lipservice_otel.report.config import ReportConfig
from lipservice_otel.sampling.config import SamplerConfig
from lipservice_otel.store.config import StoreConfig
from lipservice_otel.telemetry import TelemetryConfig
from lipservice_otel.ui.config import UiConfig
from lipservice_otel.validation import ConfigError, require

ENV_PREFIX = "LIPSERVICE_"
ENV_LEVEL_SEPARATOR = "__"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Settings:
    receiver: ReceiverConfig = field(default_factory=ReceiverConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    policy: PolicySourceConfig = field(default_factory=PolicySourceConfig)
    exporter: ExporterConfig = field(default_factory=ExporterConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    # Seconds SIGTERM waits for queued records to be exported before exiting.
    shutdown_timeout_s: float = 10.0

    def validate(self) -> None:
        self.receiver.validate("receiver")
        self.sampler.validate("sampler")
        self.policy.validate("policy")
        self.exporter.validate("exporter")
        self.analysis.validate("analysis")
        self.store.validate("store")
        self.control.validate("control")
        self.telemetry.validate("telemetry")
        self.ui.validate("ui")
        self.report.validate("report")
        require(self.shutdown_timeout_s >= 0, "shutdown_timeout_s", "must be >= 0")
        if self.analysis.llm.enabled and self.store.type == "redis":
            # The writer lock is renewed once per cycle; a cycle that outlives it lets a
            # standby replica start writing too.
            require(
                self.analysis.interval_s + self.analysis.llm.timeout_s
                < self.store.redis.lock_ttl_s,
                "analysis.llm.timeout_s",
                "analysis.interval_s + analysis.llm.timeout_s must be below store.redis.lock_ttl_s",
            )


# Top-level settings by name: "section" (a component's config) or "setting" (a scalar).
_TOP_LEVEL = {
    name: "section" if dataclasses.is_dataclass(hint) else "setting"
    for name, hint in typing.get_type_hints(Settings).items()
}


def load_settings(
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults < YAML file < environment < overrides (dotted keys, e.g. from flags)."""
    document: dict[str, Any] = {}
    if path:
        document = _read_yaml(path)
    environ = os.environ if environ is None else environ
    for dotted, value in _env_overrides(environ).items():
        _set_dotted(document, dotted, value)
    if environ.get(POSTHOG_API_KEY_ENV):
        # PostHog's own variable, below every setting that names the key explicitly.
        exporter = document.setdefault("exporter", {})
        if isinstance(exporter, dict) and isinstance(exporter.setdefault("posthog", {}), dict):
            exporter["posthog"].setdefault("api_key", environ[POSTHOG_API_KEY_ENV])
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(document, dotted, value)
    settings = _build(Settings, document, "")
    settings.validate()
    return settings


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config: {path} is not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"--config: {path} must hold a mapping at the top level")
    return loaded


def env_key(name: str) -> str | None:
    """The dotted key a `LIPSERVICE_*` variable sets, or None when it cannot be a setting.

    `LIPSERVICE_<SETTING>` (no double underscore) is read only when it names a top-level
    setting that is not a section (`LIPSERVICE_SHUTDOWN_TIMEOUT_S`); `LIPSERVICE_<SECTION>__...`
    only when its first level names a section. What is read must then be valid: a wrong field
    of a real section (`LIPSERVICE_EXPORTER__OTLP__ENDPIONT`) stops the start like the same
    typo in the file. Service links (`LIPSERVICE_ANALYZE_PORT`, `LIPSERVICE_REDIS_PORT_6379_TCP`)
    and other strangers match neither form.
    """
    if not name.startswith(ENV_PREFIX):
        return None
    levels = name[len(ENV_PREFIX) :].lower().split(ENV_LEVEL_SEPARATOR)
    kind = _TOP_LEVEL.get(levels[0])
    if kind is None or (kind == "section") != (len(levels) > 1):
        return None
    return ".".join(levels)


def ignored_environment(environ: Mapping[str, str]) -> list[str]:
    """The `LIPSERVICE_*` variables that are not settings, to be logged once logging is set up."""
    return sorted(n for n in environ if n.startswith(ENV_PREFIX) and env_key(n) is None)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    found = {}
    for name, raw in environ.items():
        dotted = env_key(name)
        if dotted is None:
            continue
        # YAML scalar rules give "true", "1.5" and "{a: b}" their natural types.
        try:
            found[dotted] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            found[dotted] = raw
    return found


def _set_dotted(document: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = document
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {part} is not a section")
        node = child
    node[leaf] = value


def _build(cls: type, raw: Any, key: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{key or 'config'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f"{key}." if key else ""
        raise ConfigError(
            f"{where}{unknown[0]}: unknown key (allowed: {', '.join(sorted(fields))})"
        )
    values = {}
    for name, value in raw.items():
        child_key = f"{key}.{name}" if key else name
        values[name] = _coerce(hints[name], value, child_key)
    return cls(**values)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(str(a) for a in args)
            raise ConfigError(f"{key}: must be one of {allowed}, got {value!r}")
        return value
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        return [_coerce(args[0], item, f"{key}[{n}]") for n, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        value_type = args[1]
        if value_type is Any:
            return dict(value)
        return {str(k): _coerce(value_type, v, f"{key}.{k}") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")
