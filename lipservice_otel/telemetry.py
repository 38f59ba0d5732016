"""Internal metrics, declared as data, exposed as Prometheus text on `/metrics`.

Hot-path code never touches these per record: the receiver adds one request's totals at a
time, so the cost is a few locked increments per request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from lipservice_otel.validation import check_endpoint

DEFAULT_METRICS_ENDPOINT = "0.0.0.0:8888"


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    # Prometheus text exposition (`/metrics`); empty string disables it.
    metrics_endpoint: str = DEFAULT_METRICS_ENDPOINT
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def validate(self, key: str) -> None:
        if self.metrics_endpoint:
            check_endpoint(self.metrics_endpoint, f"{key}.metrics_endpoint")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    kind: Literal["counter", "gauge"]
    unit: str
    description: str
    labels: tuple[str, ...] = ()


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "lipservice_receiver_accepted_records",
        "counter",
        "{records}",
        "Log records accepted by a receiver and handed to the sampler.",
        ("transport",),
    ),
    MetricSpec(
        "lipservice_receiver_refused_records",
        "counter",
        "{records}",
        "Log records refused to the sender with an error (queue full, bad request).",
        ("transport", "reason"),
    ),
    MetricSpec(
        "lipservice_sampler_kept_records",
        "counter",
        "{records}",
        "Records the policy kept, by the reason that kept them.",
        ("reason",),
    ),
    MetricSpec(
        "lipservice_sampler_dropped_records",
        "counter",
        "{records}",
        "Records the policy sampled out, by the rule that dropped them.",
        ("reason",),
    ),
    MetricSpec(
        "lipservice_error_context_recalled_records",
        "counter",
        "{records}",
        "Records sampled out earlier and forwarded because an error of their trace followed.",
    ),
    MetricSpec(
        "lipservice_sampler_cleared_ids",
        "counter",
        "{ids}",
        "Trace ids not 16 bytes long and span ids not 8 bytes long, cleared from the records "
        "(the record itself is sampled and forwarded as one without that id).",
        ("field",),
    ),
    MetricSpec(
        "lipservice_sampler_implementation",
        "gauge",
        "1",
        "1 for the sampler doing the per-record work: compiled (the C extension) or python.",
        ("implementation",),
    ),
    MetricSpec(
        "lipservice_sampler_python_records",
        "counter",
        "{records}",
        "Records the compiled sampler handed to Python: whole requests it gives up (request), "
        "records needing a call for a structured body or a severity to infer (record).",
        ("reason",),
    ),
    MetricSpec(
        "lipservice_receiver_tenant_records",
        "counter",
        "{records}",
        "Records sampled per tenant (analysis.tenant_key set), kept or dropped; tenants past "
        "analysis.max_tenants count as other.",
        ("tenant", "decision"),
    ),
    MetricSpec(
        "lipservice_sampler_tenant_overflow_records",
        "counter",
        "{records}",
        "Records counted under the tenant other because analysis.max_tenants names were "
        "taken (or their tenant name was too long).",
    ),
    MetricSpec(
        "lipservice_exporter_sent_records",
        "counter",
        "{records}",
        "Records the downstream acknowledged.",
        ("exporter",),
    ),
    MetricSpec(
        "lipservice_exporter_failed_records",
        "counter",
        "{records}",
        "Records given up on after the retry budget (or refused as permanent errors).",
        ("exporter",),
    ),
    MetricSpec(
        "lipservice_exporter_send_errors",
        "counter",
        "{requests}",
        "Export attempts that failed (each retry counts).",
        ("exporter", "code"),
    ),
    MetricSpec(
        "lipservice_queue_records",
        "gauge",
        "{records}",
        "Records waiting in the sending queue.",
    ),
    MetricSpec(
        "lipservice_queue_bytes",
        "gauge",
        "By",
        "Serialized bytes waiting in the sending queue.",
    ),
    MetricSpec(
        "lipservice_queue_replayed_records",
        "counter",
        "{records}",
        "Records read back from the persistent queue on start, to be exported again.",
    ),
    MetricSpec(
        "lipservice_queue_capacity_records",
        "gauge",
        "{records}",
        "Capacity of the sending queue.",
    ),
    MetricSpec(
        "lipservice_patterns_distinct",
        "gauge",
        "{patterns}",
        "Distinct (service, pattern, severity) keys counted in the current interval.",
    ),
    MetricSpec(
        "lipservice_aggregate_overflow_records",
        "counter",
        "{records}",
        "Records counted under the `other` pattern because the key cap was reached.",
    ),
    MetricSpec(
        "lipservice_analysis_deferred_patterns",
        "counter",
        "{patterns}",
        "New patterns left for a later cycle: analysis.max_new_patterns_per_cycle was reached.",
    ),
    MetricSpec(
        "lipservice_analysis_tenant_overflow_patterns",
        "counter",
        "{patterns}",
        "New patterns the analysis learned under the tenant `other`: their tenant was beyond "
        "analysis.max_tenants over all receivers.",
    ),
    MetricSpec(
        "lipservice_analysis_tenant_records_per_second",
        "gauge",
        "{records}/s",
        "Records/s a tenant sends (its patterns' baselines); one series per tenant tracked.",
        ("tenant",),
    ),
    MetricSpec(
        "lipservice_analysis_tenant_budget_records_per_second",
        "gauge",
        "{records}/s",
        "Records/s a tenant may keep: its services' budgets added up, scaled down to its cap "
        "from analysis.tenants when they exceed it.",
        ("tenant",),
    ),
    MetricSpec(
        "lipservice_analysis_tenant_kept_records_per_second",
        "gauge",
        "{records}/s",
        "Records/s the policy's rates keep of a tenant; above its budget where the floors "
        "(ERROR+, examples, error-like, anomalies, pins) need more.",
        ("tenant",),
    ),
    MetricSpec(
        "lipservice_analysis_received_records_per_second",
        "gauge",
        "{records}/s",
        "Records/s a tenant sends, as the savings report counts them (its patterns' baselines); "
        "basis is projection in shadow mode, realised in enforce.",
        ("tenant", "basis"),
    ),
    MetricSpec(
        "lipservice_analysis_kept_records_per_second",
        "gauge",
        "{records}/s",
        "Records/s of a tenant that enforce mode keeps: projected from the policy's rates in "
        "shadow mode, what the receivers kept in enforce (the savings report's figure).",
        ("tenant", "basis"),
    ),
    MetricSpec(
        "lipservice_analysis_saved_records_per_second",
        "gauge",
        "{records}/s",
        "Records/s of a tenant not sent to the backend: received less kept (savings report).",
        ("tenant", "basis"),
    ),
    MetricSpec(
        "lipservice_analysis_received_bytes_per_second",
        "gauge",
        "By/s",
        "Bytes/s a tenant sends (each record's encoded size as received), as the savings "
        "report counts them.",
        ("tenant", "basis"),
    ),
    MetricSpec(
        "lipservice_analysis_kept_bytes_per_second",
        "gauge",
        "By/s",
        "Bytes/s of a tenant that enforce mode keeps (projected in shadow, realised in enforce).",
        ("tenant", "basis"),
    ),
    MetricSpec(
        "lipservice_analysis_saved_bytes_per_second",
        "gauge",
        "By/s",
        "Bytes/s of a tenant not sent to the backend: received less kept (savings report); "
        "times 86400 a day, times 2592000 a 30-day month.",
        ("tenant", "basis"),
    ),
    MetricSpec(
        "lipservice_analysis_saved_money_per_month",
        "gauge",
        "{currency}",
        "What a 30-day month of a tenant's saved bytes costs at report.price_per_gib, in its "
        "currency; only with a price set.",
        ("tenant", "basis", "currency"),
    ),
    MetricSpec(
        "lipservice_analysis_forgotten_patterns",
        "counter",
        "{patterns}",
        "Patterns the analysis forgot, with their boosts: unseen for pattern_ttl_s, or the "
        "least recently seen beyond max_patterns.",
        ("reason",),
    ),
    MetricSpec(
        "lipservice_analysis_cycles",
        "counter",
        "{cycles}",
        "Analysis cycles run (learn, plan, store), whether or not they published a version.",
    ),
    MetricSpec(
        "lipservice_analysis_cycle_duration",
        "gauge",
        "s",
        "Wall-clock seconds the last analysis cycle took, the LLM advisor included; above "
        "analysis.interval_s the analysis falls behind its reports.",
    ),
    MetricSpec(
        "lipservice_analysis_shards_owned",
        "gauge",
        "{shards}",
        "Sharded analysis (store.redis.shards): shards this replica holds the lease of.",
    ),
    MetricSpec(
        "lipservice_analysis_shard_takeovers",
        "counter",
        "{shards}",
        "Sharded analysis: shards this replica took, and dropped because a newer owner's "
        "fencing token refused its write or renewal.",
        ("event",),
    ),
    MetricSpec(
        "lipservice_analysis_dropped_report_parts",
        "counter",
        "{parts}",
        "Sharded analysis: report parts not handed to their shard: more than "
        "store.redis.max_queued_reports waiting while Redis was away, or queued while the shard "
        "had no owner (their interval is unknown).",
    ),
    MetricSpec(
        "lipservice_analysis_llm_calls",
        "counter",
        "{calls}",
        "Calls made to the LLM advisor's model.",
    ),
    MetricSpec(
        "lipservice_analysis_llm_tokens",
        "counter",
        "{tokens}",
        "Tokens the LLM advisor's model reported using.",
    ),
    MetricSpec(
        "lipservice_policy_version",
        "gauge",
        "{version}",
        "Version of the policy in force.",
    ),
    MetricSpec(
        "lipservice_control_refused_calls",
        "counter",
        "{calls}",
        "Control-plane calls refused for a missing, wrong or insufficient token.",
        ("method", "code"),
    ),
    MetricSpec(
        "lipservice_control_refused_reports",
        "counter",
        "{reports}",
        "Sync reports refused whole: over control.report_limits, or claiming the impossible.",
        ("reason",),
    ),
    MetricSpec(
        "lipservice_control_sync_errors",
        "counter",
        "{errors}",
        "Failures of a receiver's policy sync (each followed by a retry or the next version).",
        ("error",),
    ),
    MetricSpec(
        "lipservice_control_receivers",
        "gauge",
        "{receivers}",
        "Receivers with a Sync stream open to this analyzer.",
    ),
    MetricSpec(
        "lipservice_control_samples_omitted",
        "counter",
        "{patterns}",
        "Patterns a receiver reported as counts only: the policy in force knows their template.",
    ),
)


class Telemetry:
    """The metric instruments of one process, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._instruments: dict[str, Counter | Gauge] = {}
        for spec in METRICS:
            kind = Counter if spec.kind == "counter" else Gauge
            self._instruments[spec.name] = kind(
                spec.name, spec.description, spec.labels, registry=self.registry
            )
        self._server = None
        self._thread: threading.Thread | None = None

    def counter(self, name: str, **labels: str) -> Counter:
        instrument = self._instruments[name]
        return instrument.labels(**labels) if labels else instrument

    def gauge(self, name: str, **labels: str) -> Gauge:
        instrument = self._instruments[name]
        return instrument.labels(**labels) if labels else instrument

    def remove(self, name: str, **labels: str) -> None:
        """Drop one labelled series (a tenant no longer tracked), so label values stay bounded."""
        spec = next(spec for spec in METRICS if spec.name == name)
        # A series never set, or removed already, is no error.
        self._instruments[name].remove(*(labels[label] for label in spec.labels))

    def value(self, name: str, **labels: str) -> float:
        """Current value of a metric (0 when never touched), as a scrape would show it."""
        kind = next(spec.kind for spec in METRICS if spec.name == name)
        sample = f"{name}_total" if kind == "counter" else name
        return self.registry.get_sample_value(sample, labels) or 0.0

    def serve(self, endpoint: str) -> int:
        """Start `/metrics` on HOST:PORT; returns the bound port (useful with port 0)."""
        host, _, port = endpoint.rpartition(":")
        self._server, self._thread = start_http_server(int(port), host, self.registry)
        return self._server.server_port

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
