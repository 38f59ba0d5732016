"""deploy/grafana/lipservice.json: a Grafana 10+ dashboard whose panels exist and whose
queries name only metrics that a running service's /metrics really exposes: a service with a
tenant key and a price, fed two tenants' records until an analysis cycle has learned them, so
the per-tenant and savings series exist."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from prometheus_client.parser import text_string_to_metric_families

from lipservice_otel.telemetry import METRICS
from tests.support.running_service import make_settings

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_PATH = ROOT / "deploy" / "grafana" / "lipservice.json"
DASHBOARD = json.loads(DASHBOARD_PATH.read_text())
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# What issue 15 asks the dashboard to show, by panel title.
REQUIRED_PANELS = (
    "Records in",
    "Records kept by reason",
    "Records dropped by reason",
    "Kept vs received",
    "Kept share",
    "Savings: dropped share",
    "Queue depth",
    "Refused records",
    "Exporter failures",
    "Patterns tracked",
    "Patterns deferred and forgotten",
    "Analysis cycle time",
    "LLM advisor calls",
    # Savings in bytes, from the savings report's gauges.
    "Saved bytes/s",
    "Saved per day",
    "Saved per month",
    "Saved money per month",
    "Bytes received vs kept",
    # Per tenant.
    "Records in by tenant",
    "Records kept by tenant",
    "Records dropped by tenant",
    "Tenant budget vs kept",
    "Saved bytes by tenant",
)
# Series that exist only once a tenant's records were sampled and a cycle learned them.
FED_SERIES = (
    "lipservice_receiver_tenant_records_total",
    "lipservice_analysis_tenant_budget_records_per_second",
    "lipservice_analysis_saved_bytes_per_second",
    "lipservice_analysis_saved_money_per_month",
)
TENANT_HEADER = "x-scope-orgid"
TENANTS = ("payments", "search")

# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"instance", "job"}
SPEC_LABELS = {spec.name: set(spec.labels) for spec in METRICS}

# The series names each exposed family stands for once Prometheus has scraped it.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "unknown": ("",),
}

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan",
}  # fmt: skip
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
MATCHERS = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
IDENTIFIER = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")
LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
AGGREGATION = re.compile(
    r"\b(?:sum|min|max|avg|count|stddev|stdvar|topk|bottomk|quantile)\s*(?:\(|by\b|without\b)"
)
LABEL_VALUES = re.compile(r"^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*(\w+)\s*\)$")


def query_panels(panels=DASHBOARD["panels"]):
    for panel in panels:
        if panel["type"] == "row":
            yield from query_panels(panel.get("panels", []))
        else:
            yield panel


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers outside strings, label matchers,
    range/offset brackets and grouping clauses that are neither functions nor keywords."""
    text = STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = GROUPING.sub(" ", text)
    names = set(IDENTIFIER.findall(text)) - KEYWORDS
    return {name for name in names if not re.fullmatch(r"\d.*", name)}


def spec_of(series: str) -> str:
    """The METRICS name behind a Prometheus series name (`_total` stripped from counters)."""
    for spec in METRICS:
        if series == spec.name or (spec.kind == "counter" and series == f"{spec.name}_total"):
            return spec.name
    raise AssertionError(f"{series} is not declared in lipservice_otel.telemetry.METRICS")


def check_syntax(expr: str) -> None:
    depth = {"(": 0, "{": 0, "[": 0}
    closing = {")": "(", "}": "{", "]": "["}
    for char in STRING.sub('""', expr):
        if char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            assert depth[closing[char]] >= 0, f"unbalanced {char!r} in {expr}"
    assert not any(depth.values()), f"unbalanced brackets in {expr}"


def tenant_request(tenant: str) -> logs_service_pb2.ExportLogsServiceRequest:
    request = logs_service_pb2.ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=f"{tenant}-api"))
    )
    resource_logs.scope_logs.add().log_records.extend(
        LogRecord(severity_number=9, body=AnyValue(string_value=f"request {n} served"))
        for n in range(50)
    )
    return request


def exposed_series(metrics_port: int) -> set[str]:
    """Every series name a /metrics stands for."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples)
    return names


@pytest.fixture
def exposed(start_service) -> set[str]:
    """Every series name the /metrics of a running service stands for, once two tenants'
    records have been sampled and an analysis cycle has learned them."""
    settings = make_settings(
        **{
            "analysis.tenant_key": f"header:{TENANT_HEADER}",
            "analysis.interval_s": 0.3,
            "sampler.report_interval_s": 0.1,
            "report.price_per_gib": 0.25,
        }
    )
    running = start_service(settings)
    endpoint = f"127.0.0.1:{running.service.receiver.port}"
    deadline = time.monotonic() + 20
    with grpc.insecure_channel(endpoint) as channel:
        stub = logs_service_pb2_grpc.LogsServiceStub(channel)
        while True:
            for tenant in TENANTS:
                stub.Export(tenant_request(tenant), metadata=((TENANT_HEADER, tenant),), timeout=5)
            names = exposed_series(running.service.metrics_port)
            if all(series in names for series in FED_SERIES):
                return names
            assert time.monotonic() < deadline, sorted(set(FED_SERIES) - names)
            time.sleep(0.2)


def test_dashboard_is_a_grafana_dashboard():
    assert isinstance(DASHBOARD["schemaVersion"], int) and DASHBOARD["schemaVersion"] >= 36
    assert DASHBOARD["uid"] and DASHBOARD["title"]
    assert DASHBOARD.get("id") is None, "an exported id would clash on import"
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in query_panels():
        title = panel["title"]
        assert panel["type"] in {"timeseries", "stat"}, title
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, title
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, title
        assert panel["datasource"] == DATASOURCE, title
        assert panel.get("description"), title
        assert panel["targets"], f"{title} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), title
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, title
            assert target["expr"].strip(), title
            check_syntax(target["expr"])


def test_every_required_panel_exists():
    titles = [panel["title"] for panel in query_panels()]
    assert len(titles) == len(set(titles)), "panel titles must be unique"
    missing = [title for title in REQUIRED_PANELS if title not in titles]
    assert not missing, f"missing panels: {missing}"


def test_queries_use_declared_labels_only():
    for panel in query_panels():
        for target in panel["targets"]:
            raw = target["expr"]
            expr = STRING.sub('""', raw)
            names = metric_names(expr)
            assert names, f"{panel['title']}: {raw} selects no metric"
            declared = set().union(*(SPEC_LABELS[spec_of(name)] for name in names))
            for metric, matchers in MATCHERS.findall(expr):
                own = SPEC_LABELS[spec_of(metric)] if metric else declared
                for label in MATCHER_LABEL.findall(matchers):
                    assert label in own | TARGET_LABELS, f"{panel['title']}: {label} in {raw}"
            grouped = set()
            for clause in GROUPING.findall(expr):
                grouped.update(label.strip() for label in clause.split(",") if label.strip())
            assert grouped <= declared | TARGET_LABELS, f"{panel['title']}: {raw}"
            # A legend names labels the result still has: those grouped by, or all of them.
            shown = set(LEGEND_LABEL.findall(target.get("legendFormat", "")))
            kept = grouped if AGGREGATION.search(expr) else declared | TARGET_LABELS
            assert shown <= kept, f"{panel['title']}: legend {shown} not in {kept}"


def test_every_query_names_metrics_that_metrics_exposes(exposed):
    assert "lipservice_receiver_accepted_records_total" in exposed  # the suffix rule holds
    for series in FED_SERIES:  # the tenant and savings panels are checked against real series
        assert series in exposed, series
    queried: set[str] = set()
    for panel in query_panels():
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            unknown = names - exposed
            assert not unknown, f"{panel['title']}: {sorted(unknown)} not on /metrics"
            queried |= names
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        match = LABEL_VALUES.match(query)
        assert match, f"variable {variable['name']}: {query}"
        assert match[1] in exposed, query
        assert match[2] in TARGET_LABELS | SPEC_LABELS[spec_of(match[1])], query
    # Sanity check of the parsing itself: every panel query found the metrics it shows.
    assert len(queried) >= 15, sorted(queried)
