"""LipService OTel: an OpenTelemetry logs sampling processor."""

from lipservice_otel.policy.document import PolicyError, policy_from_document
from lipservice_otel.policy.model import Decision, Policy, decide
from lipservice_otel.settings import Settings, load_settings
from lipservice_otel.validation import ConfigError

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
