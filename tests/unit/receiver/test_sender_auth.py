"""receiver.auth: the shared bearer token admits any sender, a tenant's token names the tenant."""

import pytest

from lipservice_otel.receiver.config import ReceiverAuthConfig
from lipservice_otel.receiver.security import Sender, SenderAuth
from lipservice_otel.validation import ConfigError

SHARED = "shared-token-0123456789"
TOKENS = {"team-a": "token-of-team-a-0123", "team-b": "token-of-team-b-0123"}


def test_without_tokens_every_sender_is_admitted():
    assert SenderAuth(None, {}).admit(None) == Sender()


def test_a_tenant_token_names_its_tenant():
    auth = SenderAuth(SHARED, TOKENS)
    assert auth.admit(f"Bearer {TOKENS['team-b']}") == Sender("team-b")
    assert auth.admit(f"Bearer {SHARED}") == Sender()
    assert auth.admit("Bearer not-a-token-at-all") is None
    assert auth.admit(None) is None


def test_tenant_tokens_alone_admit_only_their_holders():
    auth = SenderAuth(None, TOKENS)
    assert auth.required
    assert auth.admit(f"Bearer {TOKENS['team-a']}") == Sender("team-a")
    assert auth.admit(None) is None


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (
            ReceiverAuthConfig(tenant_tokens={"team-a": "short"}),
            "receiver.auth.tenant_tokens.team-a",
        ),
        (ReceiverAuthConfig(tenant_tokens={"": TOKENS["team-a"]}), "receiver.auth.tenant_tokens"),
        (
            ReceiverAuthConfig(tenant_tokens={"team-a": SHARED, "team-b": SHARED}),
            "receiver.auth.tenant_tokens",
        ),
        (
            ReceiverAuthConfig(bearer_token=SHARED, tenant_tokens={"team-a": SHARED}),
            "receiver.auth.tenant_tokens",
        ),
    ],
)
def test_bad_tenant_tokens_name_the_field(config, field):
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        config.validate("receiver.auth")
