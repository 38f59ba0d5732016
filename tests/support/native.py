"""The compiled sampler's extension for tests: skipped where it was not built, but under CI
(CI=true, as .ci/run sets it) a missing extension fails the run instead."""

from __future__ import annotations

from types import ModuleType

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from lipservice_otel.sampling.implementation import load_native
from tests.support.ci import missing


def native_module() -> ModuleType:
    native, why = load_native()
    if native is None:
        missing(f"the compiled sampler is not built here: {why}")
    return native


def sample_on_both(python, compiled, payload: bytes):
    """The reference sampler on the decoded request and the compiled one on its wire bytes,
    which it must take itself (not hand to Python): (Python's outcome, the compiled outcome,
    the request as Python left it, the request the compiled sampler forwarded)."""
    expected = ExportLogsServiceRequest.FromString(payload)
    want = python.sample(expected)
    sampled = compiled.sample_walked(compiled.walk(payload, 1 << 20))
    assert sampled is not None, "the compiled sampler gave the request to Python"
    outcome, forwarded = sampled
    return want, outcome, expected, ExportLogsServiceRequest.FromString(forwarded)
