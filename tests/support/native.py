"""The compiled sampler's extension for tests: skipped where it was not built, but under CI
(CI=true, as .ci/run sets it) a missing extension fails the run instead."""

from __future__ import annotations

from types import ModuleType

from lipservice_otel.sampling.implementation import load_native
from tests.support.ci import missing


def native_module() -> ModuleType:
    native, why = load_native()
    if native is None:
        missing(f"the compiled sampler is not built here: {why}")
    return native
