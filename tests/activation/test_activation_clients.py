"""HubSpot and Salesforce clients against the sandbox: schema checks, auth, limits, token refresh."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from activation.errors import AuthenticationError, ConfigurationError
from activation.hubspot import HubSpotDestination
from activation.mapping import SyncMapping, parse_mapping
from activation.salesforce import SalesforceCredentials, SalesforceDestination
from activation.salesforce_schema import SHIPPED_DIR
from activation.sandbox import SandboxHandle
from tests.activation.test_activation_sync import UPSERT_MAPPING

TOKEN = "pat-sandbox-0000-leadscore"


def hubspot_properties(sandbox: SandboxHandle, object_type: str) -> dict[str, dict]:
    response = requests.get(
        f"{sandbox.url}/crm/v3/properties/{object_type}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    return {p["name"]: p for p in response.json()["results"]}


def create_string_property(sandbox: SandboxHandle, name: str) -> None:
    body = {"name": name, "label": "x", "type": "string", "fieldType": "text", "groupName": "contactinformation"}
    url = f"{sandbox.url}/crm/v3/properties/contacts"
    assert requests.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).status_code == 201


# --- HubSpot ----------------------------------------------------------------------------------------------
def test_hubspot_prepare_creates_group_and_properties_once(
    sandbox: SandboxHandle, hubspot_client, mapping: SyncMapping
) -> None:
    client = hubspot_client(sandbox)
    leads = mapping.object("leads")
    client.prepare(leads)
    props = hubspot_properties(sandbox, "contacts")
    assert "leadscore_lead_id" not in props, "update mode needs no unique property of leadscore's own"
    assert props["leadscore_score"]["type"] == "number" and props["leadscore_score"]["groupName"] == "leadscore"
    assert props["leadscore_reasons"]["fieldType"] == "textarea"
    created = sandbox.admin.stats()["by_route"]["hubspot.properties.create"]
    assert created == len(leads.fields)
    hubspot_client(sandbox).prepare(leads)  # a second run finds everything and creates nothing
    assert sandbox.admin.stats()["by_route"]["hubspot.properties.create"] == created


def test_hubspot_refuses_a_mapped_property_of_the_wrong_type(
    sandbox: SandboxHandle, hubspot_client, mapping: SyncMapping
) -> None:
    create_string_property(sandbox, "leadscore_score")  # an admin got there first
    with pytest.raises(ConfigurationError, match=r"contacts\.leadscore_score has type 'string'.*expects type 'number'"):
        hubspot_client(sandbox).prepare(mapping.object("leads"))
    assert "leadscore_fit_score" not in hubspot_properties(sandbox, "contacts")  # refused before creating anything


def test_hubspot_upsert_mode_refuses_a_non_unique_id_property(sandbox: SandboxHandle, hubspot_client) -> None:
    create_string_property(sandbox, "leadscore_lead_id")  # an admin got there first
    leads = parse_mapping(UPSERT_MAPPING).object("leads")
    with pytest.raises(ConfigurationError, match="does not have unique values"):
        hubspot_client(sandbox).prepare(leads)


def test_hubspot_identifies_its_portal(start_sandbox: Callable[..., SandboxHandle], hubspot_client) -> None:
    sandbox = start_sandbox(hubspot_portal_id=24_680_135)
    client = hubspot_client(sandbox)
    assert client.identify() == "24680135"
    assert client.identify() == "24680135"
    assert sandbox.admin.stats()["by_route"]["hubspot.account.details"] == 1, "asked once per client"


def test_hubspot_bad_token_and_missing_scope(
    start_sandbox: Callable[..., SandboxHandle], hubspot_client, mapping: SyncMapping
) -> None:
    sandbox = start_sandbox(hubspot_tokens={"pat-no-schema-scope": ("crm.objects.contacts.write",)})
    with pytest.raises(AuthenticationError, match="401"):
        hubspot_client(sandbox, token="pat-wrong-token").prepare(mapping.object("leads"))
    with pytest.raises(AuthenticationError, match="scope"):
        hubspot_client(sandbox, token="pat-no-schema-scope").prepare(mapping.object("leads"))


def test_hubspot_paces_to_the_limit_the_server_announces(
    start_sandbox: Callable[..., SandboxHandle], hubspot_client, mapping: SyncMapping
) -> None:
    sandbox = start_sandbox(hubspot_tier="starter")
    client = hubspot_client(sandbox, tier="enterprise")
    assert client.limiter.max_requests == 185
    client.prepare(mapping.object("leads"))
    assert client.limiter.max_requests == 95


def test_hubspot_from_env_requires_a_token() -> None:
    with pytest.raises(ConfigurationError, match="HUBSPOT_ACCESS_TOKEN"):
        HubSpotDestination.from_env({})
    client = HubSpotDestination.from_env({"HUBSPOT_ACCESS_TOKEN": "pat-x-123456", "HUBSPOT_TIER": "Professional"})
    assert client.base_url == "https://api.hubapi.com" and client.limiter.max_requests == 185


# --- Salesforce ------------------------------------------------------------------------------------------------
def test_salesforce_prepare_names_every_missing_field(
    start_sandbox: Callable[..., SandboxHandle], salesforce_client, mapping: SyncMapping
) -> None:
    sandbox = start_sandbox(salesforce_deploy_leadscore_fields=False)
    client = salesforce_client(sandbox)
    leads = mapping.object("leads")
    with pytest.raises(ConfigurationError) as error:
        client.prepare(leads)
    message = str(error.value)
    for sobject in ("Contact", "Lead"):  # people are Leads until converted, then Contacts: both need the fields
        for _, name in leads.fields_for("salesforce"):
            assert f"missing field {sobject}.{name}" in message
    assert "Leadscore_Lead_Id__c" not in message, "update mode matches by Id: no external id field needed"
    assert "Number(18, 1)" in message and str(SHIPPED_DIR) in message and "Leadscore_Integration" in message
    # Once an admin deploys the fields, the same check passes.
    fields = [
        {"name": n, "type": {"number": "double", "string": "string", "text": "textarea"}[f.type]}
        for f, n in leads.fields_for("salesforce")
    ]
    for sobject in ("Contact", "Lead"):
        sandbox.admin.add_salesforce_fields(sobject, fields)
    client.prepare(leads)


def test_salesforce_prepare_reports_wrong_types_and_fields_it_cannot_edit(
    sandbox: SandboxHandle, salesforce_client, mapping: SyncMapping
) -> None:
    sandbox.admin.add_salesforce_fields(
        "Lead",
        [{"name": "Leadscore_Score__c", "type": "string"}, {"name": "Leadscore_Tier__c", "type": "string",
                                                            "updateable": False}],
    )  # fmt: skip
    with pytest.raises(ConfigurationError) as error:
        salesforce_client(sandbox).prepare(mapping.object("leads"))
    message = str(error.value)
    assert "Lead.Leadscore_Score__c has type 'string'" in message
    assert "Lead.Leadscore_Tier__c is not editable" in message
    assert "Contact." not in message


def test_salesforce_identifies_its_org_from_the_token(
    start_sandbox: Callable[..., SandboxHandle], salesforce_client
) -> None:
    org = "00D5g000004SbXzEAK"
    assert salesforce_client(start_sandbox(salesforce_org_id=org)).identify() == org


def test_salesforce_client_credentials_need_the_my_domain_url(sandbox: SandboxHandle) -> None:
    """Salesforce refuses the client-credentials flow on login.salesforce.com: say so before asking."""
    with pytest.raises(ConfigurationError, match=r"SALESFORCE_LOGIN_URL.*My Domain"):
        SalesforceDestination.from_env({"SALESFORCE_CLIENT_ID": "key", "SALESFORCE_CLIENT_SECRET": "secret-123"})
    with pytest.raises(ConfigurationError, match="My Domain"):
        SalesforceDestination.from_env(
            {"SALESFORCE_CLIENT_ID": "k", "SALESFORCE_CLIENT_SECRET": "s-123456", "SALESFORCE_LOGIN_URL":
             "https://test.salesforce.com"}
        )  # fmt: skip
    # The sandbox plays both hosts: its generic login URL refuses the flow like the real one does.
    config = sandbox.app.config
    generic = SalesforceDestination.from_env(
        {"SALESFORCE_CLIENT_ID": config.salesforce_client_id, "SALESFORCE_CLIENT_SECRET":
         config.salesforce_client_secret, "SALESFORCE_LOGIN_URL": sandbox.salesforce_generic_login_url}
    )  # fmt: skip
    with pytest.raises(AuthenticationError, match="not supported on this domain"):
        generic.identify()
    my_domain = SalesforceDestination.from_env({**sandbox.env()})
    assert my_domain.identify() == sandbox.app.config.salesforce_org_id


def test_salesforce_bad_secret_is_an_authentication_error_without_the_secret(
    sandbox: SandboxHandle, mapping: SyncMapping
) -> None:
    creds = SalesforceCredentials("sandbox-consumer-key", client_secret="definitely-wrong-secret")
    client = SalesforceDestination.from_env(
        {
            "SALESFORCE_CLIENT_ID": "sandbox-consumer-key",
            "SALESFORCE_CLIENT_SECRET": "definitely-wrong-secret",
            "SALESFORCE_LOGIN_URL": sandbox.salesforce_login_url,
        }
    )
    with pytest.raises(AuthenticationError) as error:
        client.prepare(mapping.object("leads"))
    assert "invalid client credentials" in str(error.value)
    assert "definitely-wrong-secret" not in str(error.value) and "definitely-wrong-secret" not in repr(creds)


def test_salesforce_gets_a_new_token_once_when_the_session_expires(
    sandbox: SandboxHandle, salesforce_client, mapping: SyncMapping
) -> None:
    client = salesforce_client(sandbox)
    client.prepare(mapping.object("leads"))
    sandbox.admin.expire_salesforce_tokens()
    client.prepare(mapping.object("leads"))
    assert client.stats.snapshot()["reauthentications"] == 1
    assert sandbox.admin.stats()["by_route"]["salesforce.oauth.token"] == 2


def test_salesforce_gives_up_when_a_new_token_is_refused_too(
    start_sandbox: Callable[..., SandboxHandle], salesforce_client, mapping: SyncMapping
) -> None:
    client = salesforce_client(start_sandbox(salesforce_token_lifetime=0.0))
    with pytest.raises(AuthenticationError):
        client.prepare(mapping.object("leads"))
    assert client.stats.snapshot()["reauthentications"] == 1


def test_salesforce_jwt_flow_from_env(
    tmp_path: Path, start_sandbox: Callable[..., SandboxHandle], mapping: SyncMapping
) -> None:
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "server.key"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    sandbox = start_sandbox(salesforce_jwt_public_key_pem=public)
    env = {
        "SALESFORCE_LOGIN_URL": sandbox.url,
        "SALESFORCE_CLIENT_ID": "sandbox-consumer-key",
        "SALESFORCE_JWT_KEY_FILE": str(key_file),
        "SALESFORCE_USERNAME": "integration@leadscore.example",
    }
    SalesforceDestination.from_env(env).prepare(mapping.object("leads"))


def test_salesforce_from_env_explains_missing_credentials() -> None:
    with pytest.raises(ConfigurationError, match="SALESFORCE_CLIENT_ID"):
        SalesforceDestination.from_env({})
    with pytest.raises(ConfigurationError, match=r"SALESFORCE_CLIENT_SECRET.*SALESFORCE_JWT_KEY_FILE"):
        SalesforceDestination.from_env({"SALESFORCE_CLIENT_ID": "abc"})


def test_hubspot_identity_falls_back_when_account_info_is_refused(sandbox: SandboxHandle, hubspot_client) -> None:
    """A private app may lack the scope account-info wants (403): the legacy endpoint names the portal too."""
    client = hubspot_client(sandbox)
    request = client.request
    asked: list[str] = []

    def refuse_account_info(method: str, url: str, **kwargs: object) -> requests.Response:
        asked.append(url.rsplit("/", 2)[-2])
        if url.endswith("/account-info/v3/details"):
            raise AuthenticationError("the HubSpot private app lacks a scope (403)")
        return request(method, url, **kwargs)

    client.request = refuse_account_info  # type: ignore[method-assign]
    assert client.identify() == str(sandbox.portal_id)
    assert asked == ["v3", "v1"]


def test_a_token_from_a_secret_file_loses_its_newline_and_nothing_leaks(
    sandbox: SandboxHandle, warehouse, leads_table, company, mapping: SyncMapping
) -> None:
    from activation import make_destination
    from activation.sync import sync_object

    leads_table(warehouse, 3)
    company(sandbox, leads=3)
    token = sandbox.env()["HUBSPOT_ACCESS_TOKEN"]
    client = make_destination("hubspot", {**sandbox.env(), "HUBSPOT_ACCESS_TOKEN": token + "\n"})
    assert sync_object(warehouse, client, mapping.object("leads")).updated == 3
    with pytest.raises(ConfigurationError, match="HUBSPOT_ACCESS_TOKEN contains whitespace"):
        make_destination("hubspot", {**sandbox.env(), "HUBSPOT_ACCESS_TOKEN": "pat-abc def-123456"})
    # A header requests refuses to send fails the run with a redacted message, never the token itself.
    broken = HubSpotDestination("pat-broken-" + "x" * 12 + "\nX", client.hub_settings)
    with pytest.raises(Exception) as failure:
        sync_object(warehouse, broken, mapping.object("leads"))
    messages = warehouse.execute("SELECT message FROM activation.sync_runs WHERE status = 'failed'").fetchall()
    assert messages and all("pat-broken" not in m for (m,) in messages) and "pat-broken" not in str(failure.value)
