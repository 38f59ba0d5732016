"""Which sampler does the per-record work: the compiled twin or the pure-Python reference.

`sampler.implementation` (config.py) chooses: `compiled` needs the C extension
`lipservice_otel.sampling._native`, which `pip install` builds when a C compiler is there and
skips with a warning when not; `python` is the reference the compiled one is tested against;
`auto` takes the compiled one when the extension imports. Both make the same decisions.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from types import ModuleType

from lipservice_otel.policy.model import Policy
from lipservice_otel.sampling.aggregates import Aggregates
from lipservice_otel.sampling.compiled import CompiledSampler
from lipservice_otel.sampling.config import SamplerConfig
from lipservice_otel.sampling.sampler import Sampler
from lipservice_otel.sampling.tenant import DEFAULT_MAX_TENANTS, TenantKey
from lipservice_otel.validation import ConfigError

COMPILED = "compiled"
PYTHON = "python"
NATIVE_MODULE = "lipservice_otel.sampling._native"

log = logging.getLogger(__name__)


def load_native() -> tuple[ModuleType | None, str]:
    """The extension module, or None and why it cannot be used."""
    try:
        return importlib.import_module(NATIVE_MODULE), ""
    except ImportError as exc:
        return None, str(exc)


def resolve(choice: str) -> str:
    """The implementation `choice` stands for here: COMPILED or PYTHON."""
    if choice == PYTHON:
        return PYTHON
    native, why = load_native()
    if native is not None:
        return COMPILED
    if choice == COMPILED:
        raise ConfigError(
            f"sampler.implementation: compiled, but {NATIVE_MODULE} cannot be imported ({why}); "
            "reinstall with a C compiler present, or set it to auto or python"
        )
    log.warning(
        "sampler: the compiled extension %s is not available (%s); sampling with the "
        "pure-Python implementation, several times slower",
        NATIVE_MODULE,
        why,
    )
    return PYTHON


def build_sampler(
    config: SamplerConfig,
    policy: Policy,
    aggregates: Aggregates,
    clock: Callable[[], float] = time.monotonic,
    tenant_key: TenantKey | None = None,
    max_tenants: int = DEFAULT_MAX_TENANTS,
) -> Sampler:
    """The sampler `config.implementation` asks for (a ConfigError when it cannot be had)."""
    if resolve(config.implementation) == COMPILED:
        native, _ = load_native()
        sampler: Sampler = CompiledSampler(
            native, config, policy, aggregates, clock, tenant_key, max_tenants
        )
    else:
        sampler = Sampler(config, policy, aggregates, clock, tenant_key, max_tenants)
    log.info("sampler: the %s implementation", implementation_of(sampler))
    return sampler


def implementation_of(sampler: Sampler) -> str:
    return COMPILED if isinstance(sampler, CompiledSampler) else PYTHON
