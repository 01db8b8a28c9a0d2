"""The ``crm`` resource: sandbox or live is configuration, never a fallback, and a live deployment missing a
credential fails before it syncs anything."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInvalidConfigError, materialize

from activation.sandbox import run_sandbox
from dagster_project.assets_activation import hubspot_sync, salesforce_sync
from dagster_project.resources import CrmResource, WarehouseResource, crm_from_env
from tests.activation.conftest import seed_crm, write_accounts, write_leads


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        write_leads(con, 5)
        write_accounts(con, 3)
    return path


def sync_runs(path: Path) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'activation'")
        if ("sync_runs",) not in tables.fetchall():
            return []
        return con.execute("SELECT destination, instance, object, status FROM activation.sync_runs").fetchall()


def run(asset, warehouse: Path, crm: CrmResource):
    return materialize(
        [asset], resources={"warehouse": WarehouseResource(path=str(warehouse)), "crm": crm}, raise_on_error=False
    )


def failure_message(result) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, "the step should have failed"
    return str(failures[0].event_specific_data.error)


def test_crm_from_env_defaults_to_the_sandbox_and_refuses_nonsense(tmp_path: Path) -> None:
    crm = crm_from_env({})
    assert (crm.mode, crm.destinations, crm.credentials_in_environment) == ("sandbox", ["hubspot", "salesforce"], [])
    assert Path(crm.sandbox_state).is_absolute()
    assert crm_from_env({"LEADSCORE_CRM_DESTINATIONS": " HubSpot "}).destinations == ["hubspot"]
    sandboxed = crm_from_env({"HUBSPOT_ACCESS_TOKEN": "pat-real-123456"})
    assert sandboxed.credentials_in_environment == ["HUBSPOT_ACCESS_TOKEN"]
    assert "pat-real-123456" not in repr(sandboxed), "names, never values"
    with pytest.raises(ValueError, match="LEADSCORE_CRM must be 'sandbox' or 'live'"):
        crm_from_env({"LEADSCORE_CRM": "prod"})
    with pytest.raises(ValueError, match="pipedrive"):
        crm_from_env({"LEADSCORE_CRM_DESTINATIONS": "hubspot,pipedrive"})
    live = crm_from_env({"LEADSCORE_CRM": "live", "SALESFORCE_LOGIN_URL": "https://acme.my.salesforce.com"})
    assert live.mode == "live" and live.settings == {"SALESFORCE_LOGIN_URL": "https://acme.my.salesforce.com"}


def test_the_embedded_default_writes_onto_the_sandbox_copy_of_the_crm(tmp_path: Path, warehouse: Path) -> None:
    state = tmp_path / "crm.sqlite"
    with run_sandbox(state_path=state) as sandbox:  # the company's CRM, as the synthetic generator made it
        seed_crm(sandbox, leads=5, accounts=3)
    crm = CrmResource(sandbox_state=str(state))
    result = run(hubspot_sync, warehouse, crm)
    assert result.success
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["leads_updated"].value == 5 and metadata["accounts_updated"].value == 3
    assert metadata["crm_mode"].value == "sandbox"
    with run_sandbox(state_path=state) as sandbox:
        contacts = sandbox.admin.hubspot_objects("contacts")
    assert len(contacts) == 5 and all("leadscore_score" in c["properties"] for c in contacts)
    again = run(hubspot_sync, warehouse, crm)
    assert again.get_asset_materialization_events()[0].materialization.metadata["leads_sent"].value == 0


def test_credentials_in_sandbox_mode_are_refused_not_ignored(tmp_path: Path, warehouse: Path) -> None:
    crm = CrmResource(sandbox_state=str(tmp_path / "crm.sqlite"), credentials_in_environment=["HUBSPOT_ACCESS_TOKEN"])
    result = run(hubspot_sync, warehouse, crm)
    assert not result.success
    assert "HUBSPOT_ACCESS_TOKEN set, but LEADSCORE_CRM is 'sandbox'" in failure_message(result)
    assert sync_runs(warehouse) == []


def test_a_live_deployment_missing_a_credential_fails_before_syncing(
    tmp_path: Path, warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HUBSPOT_ACCESS_TOKEN", "SALESFORCE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    # A secret is a Dagster EnvVar: the run does not even start, and Dagster names the variable.
    with pytest.raises(DagsterInvalidConfigError, match="HUBSPOT_ACCESS_TOKEN"):
        run(hubspot_sync, warehouse, crm_from_env({"LEADSCORE_CRM": "live", "LEADSCORE_CRM_DESTINATIONS": "hubspot"}))
    assert sync_runs(warehouse) == []
    # A missing setting fails the sync step before any request, naming the variable, never the secret.
    monkeypatch.setenv("SALESFORCE_CLIENT_SECRET", "a-secret-value")
    result = run(
        salesforce_sync, warehouse, crm_from_env({"LEADSCORE_CRM": "live", "LEADSCORE_CRM_DESTINATIONS": "salesforce"})
    )
    assert not result.success
    message = failure_message(result)
    assert "SALESFORCE_CLIENT_ID" in message and "a-secret-value" not in message
    assert sync_runs(warehouse) == []


def test_a_live_crm_is_whatever_the_variables_point_at(
    tmp_path: Path, warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live mode against a CRM at another address (here a second sandbox playing the real portal): its own
    instance, so everything is sent although the local sandbox already has it all."""
    local = tmp_path / "local.sqlite"
    with run_sandbox(state_path=local) as sandbox:
        seed_crm(sandbox, leads=5, accounts=3)
    assert run(hubspot_sync, warehouse, CrmResource(sandbox_state=str(local))).success
    with run_sandbox(state_path=tmp_path / "real.sqlite", hubspot_portal_id=77_000_001) as real:
        seed_crm(real, leads=5, accounts=3)
        monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", real.env()["HUBSPOT_ACCESS_TOKEN"])
        live = crm_from_env({"LEADSCORE_CRM": "live", "LEADSCORE_CRM_DESTINATIONS": "hubspot", **{
            k: v for k, v in real.env().items() if k in ("HUBSPOT_BASE_URL", "HUBSPOT_TIER")}})  # fmt: skip
        result = run(hubspot_sync, warehouse, live)
        assert result.success
        metadata = result.get_asset_materialization_events()[0].materialization.metadata
        assert (metadata["crm_instance"].value, metadata["leads_updated"].value) == ("77000001", 5)
        skipped = run(salesforce_sync, warehouse, live)
        assert skipped.get_asset_materialization_events()[0].materialization.metadata["skipped"].value
