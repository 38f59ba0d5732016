"""LipService OTel: an OpenTelemetry logs sampling processor."""

from lipservice_otel.config import ConfigError, Settings, load_settings
from lipservice_otel.policy import Decision, Policy, PolicyError, decide, policy_from_document

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Decision",
    "Policy",
    "PolicyError",
    "Settings",
    "__version__",
    "decide",
    "load_settings",
    "policy_from_document",
]
