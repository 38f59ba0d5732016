"""Per-tenant budgets through a real `serve`: two tenants behind one gateway, told apart by the
`x-scope-orgid` gRPC metadata, one ten times louder than the other, with the same service and
the same templates. The analysis (embedded, or an `analyze` process the tenants reach over the
control plane) learns each tenant's rates from its own volume: what the sink receives of each
tenant meets that tenant's own target."""

from __future__ import annotations

import contextlib
import random
import time
from collections import Counter

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from tests.support.cli_process import (
    metric,
    serve_config,
    start_analyze,
    start_serve,
    stop_gracefully,
)
from tests.support.ports import free_port
from tests.support.traffic import EXPORT, Pattern, attributes, build_request

TARGETS = {"quiet": 0.5, "loud": 0.9}
LOUDNESS = {"quiet": 1, "loud": 10}
# Per second for the quiet tenant; the loud one sends ten times as much of each.
PATTERNS = [
    Pattern("cart", "GET /api/cart returned 200 in {n}ms", 60),
    Pattern("cache", "cache hit for session key {n}", 40),
    Pattern("heartbeat", "heartbeat from worker pool, queue depth {n}", 30),
    Pattern("flush", "metrics flushed: {n} series written", 20),
]
TICK_S = 0.1
LEARN_S = 5.0
MEASURE_S = 4.0
ANALYSIS = {
    "interval_s": 1.0,
    "target_reduction": 0.8,
    "min_examples_per_interval": 2,
    "anomaly_cooldown_s": 1.0,
    "tenants": {tenant: {"target_reduction": target} for tenant, target in TARGETS.items()},
}


class TenantSender:
    """One gRPC channel per tenant, each request carrying its tenant's metadata."""

    def __init__(self, endpoint: str) -> None:
        self.channel = grpc.insecure_channel(endpoint)
        self.export = self.channel.unary_unary(
            EXPORT,
            request_serializer=lambda payload: payload,
            response_deserializer=ExportLogsServiceResponse.FromString,
        )
        self.rng = random.Random(7)
        self.sent: Counter = Counter()  # (tenant, phase) -> records

    def run(self, phase: str, seconds: float) -> None:
        carry: Counter = Counter()
        next_tick = time.monotonic()
        end = next_tick + seconds
        while time.monotonic() < end:
            for tenant, loudness in LOUDNESS.items():
                batch = []
                for pattern in PATTERNS:
                    carry[tenant, pattern.name] += pattern.per_second * loudness * TICK_S
                    count = int(carry[tenant, pattern.name])
                    carry[tenant, pattern.name] -= count
                    batch.append((pattern, count))
                    self.sent[tenant, phase] += count
                request = build_request(batch, "checkout", self.rng, f"{tenant}/{phase}", 0)
                self.export(
                    request.SerializeToString(),
                    metadata=(("x-scope-orgid", tenant),),
                    timeout=10,
                )
            next_tick += TICK_S
            time.sleep(max(0.0, next_tick - time.monotonic()))

    def close(self) -> None:
        self.channel.close()


@pytest.mark.parametrize("analysis", ["embedded", "analyze"])
def test_each_tenant_meets_its_own_target_whatever_the_other_sends(analysis, sink, tmp_path):
    tenant_key = {"tenant_key": "header:x-scope-orgid"}
    with contextlib.ExitStack() as stack:
        if analysis == "embedded":
            config = serve_config(
                sink.endpoint,
                analysis={"embedded": True, **ANALYSIS, **tenant_key},
                sampler={"report_interval_s": 0.25},
            )
            metrics = config["telemetry"]["metrics_endpoint"]
        else:
            # The receiver reads the tenant; the analyzer holds the budgets and the gauges.
            control, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
            settings = {f"analysis.{key}": value for key, value in ANALYSIS.items()}
            analyzer = start_analyze(
                tmp_path, control, {**settings, "telemetry.metrics_endpoint": metrics}
            )
            stack.callback(stop_gracefully, analyzer)
            config = serve_config(
                sink.endpoint,
                analysis=tenant_key,
                control={"connect": control},
                sampler={"report_interval_s": 0.25},
            )
        serve = start_serve(tmp_path, config)
        stack.callback(serve.kill)  # once stopped below, a no-op
        sender = TenantSender(config["receiver"]["grpc"]["endpoint"])
        stack.callback(sender.close)
        sender.run("learn", LEARN_S)
        sender.run("measure", MEASURE_S)
        budgets = {
            tenant: metric(
                metrics, "lipservice_analysis_tenant_budget_records_per_second", tenant=tenant
            )
            for tenant in TARGETS
        }
        code, _ = stop_gracefully(serve)
        assert code == 0, serve.log()

    received = Counter(attributes(record)["scenario.phase"] for _, record in sink.records())
    for tenant, target in TARGETS.items():
        sent = sender.sent[tenant, "measure"]
        kept = received[f"{tenant}/measure"]
        reduction = 1 - kept / sent
        print(f"{tenant}: sent {sent}, kept {kept}, reduction {reduction:.3f}")
        # 600 quiet records kept at 0.5: one standard deviation of the share is ~0.02.
        assert reduction == pytest.approx(target, abs=0.08), (tenant, sent, kept)
        # The tenant's budget as the analysis published it: (1 - target) x its volume.
        volume = sum(p.per_second for p in PATTERNS) * LOUDNESS[tenant]
        assert budgets[tenant] == pytest.approx((1 - target) * volume, rel=0.15), budgets
