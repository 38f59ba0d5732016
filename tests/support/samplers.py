"""The sampler a test runs: the compiled one where its extension is built, the Python twin
under LIPSERVICE_SAMPLER__IMPLEMENTATION=python (the second, twin run of `make test`)."""

from __future__ import annotations

import os
import time
from dataclasses import replace

from lipservice_otel.sampling.implementation import build_sampler
from lipservice_otel.sampling.sampler import Sampler

IMPLEMENTATION_ENV = "LIPSERVICE_SAMPLER__IMPLEMENTATION"


def implementation() -> str:
    return os.environ.get(IMPLEMENTATION_ENV, "auto")


def make_sampler(config, policy, aggregates, clock=time.monotonic) -> Sampler:
    return build_sampler(
        replace(config, implementation=implementation()), policy, aggregates, clock
    )
