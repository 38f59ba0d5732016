"""analysis.tenant_key: where a record's tenant is read from, and the names it refuses."""

import pytest

from lipservice_otel.sampling.tenant import TenantKey, parse_tenant_key
from lipservice_otel.validation import ConfigError


def test_empty_means_no_tenants():
    assert parse_tenant_key("", "analysis.tenant_key") is None


def test_resource_attribute_keeps_its_name():
    assert parse_tenant_key("resource:k8s.namespace.name", "analysis.tenant_key") == TenantKey(
        "resource", "k8s.namespace.name"
    )


def test_header_names_are_lowercased():
    assert parse_tenant_key("header:X-Scope-OrgID", "analysis.tenant_key") == TenantKey(
        "header", "x-scope-orgid"
    )


@pytest.mark.parametrize(
    "text",
    [
        "k8s.namespace.name",  # no kind
        "attribute:team",  # unknown kind
        "resource:",  # no attribute
        "resource: team",  # padded attribute
        "header:",  # no header
        "header:x scope",  # not a token
        "header:x-scope:orgid",  # ':' is no header character
        "header:tenant-bin",  # binary metadata carries bytes
        "header:grpc-tenant",  # gRPC's own keys
        "header:tenant\u00e9",  # not ASCII
    ],
)
def test_bad_keys_name_the_field(text):
    with pytest.raises(ConfigError, match=r"^analysis\.tenant_key: "):
        parse_tenant_key(text, "analysis.tenant_key")
