"""The Savings call: a real gRPC control plane in front of a real analysis loop."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from lipservice_otel._proto.lipservice.v1 import control_pb2, control_pb2_grpc
from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.loop import AnalysisLoop
from lipservice_otel.control.security import ControlTokens, authorization_metadata
from lipservice_otel.control.server import ControlPlaneService, start_control_server
from lipservice_otel.policy.model import Policy
from lipservice_otel.report.codec import savings_from_proto
from lipservice_otel.report.savings import BASIS_PROJECTION, GIB, Price
from lipservice_otel.sampling.aggregates import IntervalReport, PatternCounts, PatternInfo
from lipservice_otel.store.memory import MemoryStore

BEARER = "bearer-token-for-tests"
ADMIN = "admin-token-for-the-tests"
SIZE = 100  # bytes a record


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def savings_calls(requests: list[control_pb2.SavingsRequest], token: str | None):
    """Learn one 10 s cycle of 2000 records (shadow mode), then make each call."""
    clock = Clock()
    store = MemoryStore(None, history_limit=10)
    loop = AnalysisLoop(AnalysisConfig(), store, Policy(version=1, mode="shadow"), clock)
    service = ControlPlaneService(loop, store, price=Price(0.5, "EUR"))
    tokens = ControlTokens(bearer=BEARER, admin=ADMIN)
    server, port = await start_control_server(service, "127.0.0.1:0", tokens=tokens)
    loop.ingest(
        IntervalReport(
            counts=[
                PatternCounts("api", "p", "info", 2000, 2000, 2000 * SIZE, 2000 * SIZE),
            ],
            patterns={"p": PatternInfo("api", "p <*>", ["p 1"])},
            overflow_records=0,
        )
    )
    clock.now += 10.0
    await loop.cycle()
    results = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = control_pb2_grpc.ControlPlaneStub(channel)
            for request in requests:
                try:
                    results.append(
                        await stub.Savings(
                            request, timeout=5, metadata=authorization_metadata(token)
                        )
                    )
                except grpc.aio.AioRpcError as error:
                    results.append(error)
    finally:
        await server.stop(0)
    return results


def test_the_bearer_token_reads_the_savings_with_the_configured_price():
    (message,) = asyncio.run(savings_calls([control_pb2.SavingsRequest()], BEARER))
    report = savings_from_proto(message)
    assert report.basis == BASIS_PROJECTION and report.price == Price(0.5, "EUR")
    (row,) = report.services[0].patterns
    # 200 records/s of 100 bytes; the learned rate keeps its share of them.
    assert row.figures.records_per_second == pytest.approx(200.0)
    assert row.figures.bytes_per_second == pytest.approx(200.0 * SIZE)
    assert 0 < row.rate < 1
    assert row.figures.kept_bytes_per_second == pytest.approx(200.0 * SIZE * row.rate)
    saved_month = 200.0 * SIZE * (1 - row.rate) * 86_400 * 30
    assert report.totals.saved_bytes_per_month == pytest.approx(saved_month)
    assert report.price.of(report.totals.saved_bytes_per_month) == pytest.approx(
        saved_month / GIB * 0.5
    )


def test_a_request_brings_its_own_price_and_a_bad_one_is_refused():
    requests = [
        control_pb2.SavingsRequest(price_per_gib=2.0),
        control_pb2.SavingsRequest(currency="credits"),
        control_pb2.SavingsRequest(price_per_gib=-1.0),
        control_pb2.SavingsRequest(price_per_gib=float("nan")),
    ]
    priced, relabelled, negative, nan = asyncio.run(savings_calls(requests, BEARER))
    assert (priced.price_per_gib, priced.currency) == (2.0, "EUR")
    assert (relabelled.price_per_gib, relabelled.currency) == (0.5, "credits")
    for refused in (negative, nan):
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "report.price_per_gib" in refused.details()


def test_without_a_token_the_call_is_refused():
    (refused,) = asyncio.run(savings_calls([control_pb2.SavingsRequest()], None))
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
