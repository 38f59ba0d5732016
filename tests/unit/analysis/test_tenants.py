"""Per-tenant budgets: the settings, the split of a tenant's cap over its services, and plans
over two tenants, one ten times louder than the other, with the same service names."""

from __future__ import annotations

import json

import pytest

from lipservice_otel.analysis.config import TenantBudget
from lipservice_otel.analysis.state import AnalysisState, PatternState
from lipservice_otel.settings import load_settings
from lipservice_otel.validation import ConfigError


def test_tenant_settings_load_from_yaml_and_environment(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "analysis:\n"
        "  tenant_key: header:X-Scope-OrgID\n"
        "  max_tenants: 5\n"
        "  tenants:\n"
        "    team-a: {target_reduction: 0.9}\n"
        "    team-b: {target_records_per_second: 50}\n"
    )
    environ = {"LIPSERVICE_ANALYSIS__TENANTS__TEAM_C__TARGET_RECORDS_PER_SECOND": "7"}
    analysis = load_settings(str(path), environ=environ).analysis
    assert analysis.tenant_key == "header:X-Scope-OrgID"
    assert analysis.max_tenants == 5
    assert analysis.tenants == {
        "team-a": TenantBudget(target_reduction=0.9),
        "team-b": TenantBudget(target_records_per_second=50.0),
        # Environment variable names are upper case: the tenant's name arrives lower case.
        "team_c": TenantBudget(target_records_per_second=7.0),
    }


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TENANT_KEY": "x-scope-orgid"}, "analysis.tenant_key: expected 'resource:"),
        ({"TENANT_KEY": "header:grpc-timeout"}, "analysis.tenant_key: expected a header"),
        ({"MAX_TENANTS": "0"}, "analysis.max_tenants: must be >= 1"),
        ({"TENANTS": "{a: {}}"}, "analysis.tenants.a: set exactly one of target_reduction"),
        (
            {"TENANTS": "{a: {target_reduction: 0.5, target_records_per_second: 3}}"},
            "analysis.tenants.a: set exactly one",
        ),
        ({"TENANTS": "{a: {target_reduction: 1}}"}, "analysis.tenants.a.target_reduction: must"),
        (
            {"TENANTS": "{a: {target_records_per_second: 0}}"},
            "analysis.tenants.a.target_records_per_second: must be > 0",
        ),
        ({"TENANTS": "{a: {target_reductio: 0.5}}"}, "analysis.tenants.a.target_reductio: unknown"),
        ({"TENANTS": "{a: 0.5}"}, "analysis.tenants.a: expected a mapping"),
        (
            {
                "MAX_TENANTS": "1",
                "TENANTS": "{a: {target_reduction: 0.5}, b: {target_reduction: 0.5}}",
            },
            "analysis.tenants: 2 tenants, more than max_tenants (1)",
        ),
    ],
)
def test_bad_tenant_settings_name_their_key(environ, message):
    environ = {f"LIPSERVICE_ANALYSIS__{k}": v for k, v in environ.items()}
    with pytest.raises(ConfigError) as raised:
        load_settings(None, environ=environ)
    assert str(raised.value).startswith(message), raised.value


def test_a_patterns_tenant_survives_the_snapshot_and_older_snapshots_load_without_it():
    state = AnalysisState()
    state.patterns["a1"] = PatternState("a1", "api", "GET <*>", 1.0, tenant="team-a")
    state.patterns["b1"] = PatternState("b1", "api", "GET <*>", 1.0, tenant="team-b")
    restored = AnalysisState.from_bytes(state.to_bytes())
    assert {pid: p.tenant for pid, p in restored.patterns.items()} == {
        "a1": "team-a",
        "b1": "team-b",
    }
    # A snapshot written before tenants existed: its patterns have no "tenant" key.
    older = json.loads(state.to_bytes())
    for pattern in older["patterns"]:
        del pattern["tenant"]
    restored = AnalysisState.from_bytes(json.dumps(older).encode())
    assert [p.tenant for p in restored.patterns.values()] == ["", ""]
