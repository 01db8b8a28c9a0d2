"""The whole nightly on exports that change like real ones: records deleted in the CRM, a different company
loaded onto an existing warehouse, a person erased. Each test starts from one tiny nightly run (copied).

The runs are for the latest partition (yesterday) when each starts, with the tiny company's data ending
yesterday: only a run that reaches the latest day syncs the CRM. The day is taken per run, not once per module:
a suite that starts before midnight runs these after it."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from activation.sandbox import run_sandbox
from dagster_project.definitions import build_definitions
from dagster_project.partitions import daily_partitions
from dagster_project.resources import CrmResource, SourcesResource
from ml.sources.files import export_raw
from ml.sources.governance import erase
from tests.conftest import query
from tests.test_erasure import traces
from tests.test_orchestration import make_instance

# Each test runs whole nightlies (the first also the one its fixture copies): on a busy 2-core machine one test
# has taken 600 s, the suite's default limit, with nothing wrong.
pytestmark = pytest.mark.timeout(1800)


def nightly(
    root: Path, warehouse: Path, sources: SourcesResource, monkeypatch: pytest.MonkeyPatch, *, history: bool = False
):
    """One nightly run for the latest day on ``warehouse``, its CRM sandbox kept beside it (``history``: also build the
    weekly training history, as `make run` does on a new warehouse)."""
    monkeypatch.setenv("LEADSCORE_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("LEADSCORE_OPTUNA_TRIALS", "2")  # the model is not under test here
    crm = CrmResource(sandbox_state=str(warehouse.parent / "crm.sqlite"))
    run_config = {"ops": {"dbt_daily_history": {"config": {"rebuild_training_history": True}}}} if history else {}
    with make_instance(root / "dagster_home") as instance:
        result = (
            build_definitions(sources, crm)
            .resolve_job_def("nightly")
            .execute_in_process(
                instance=instance,
                partition_key=daily_partitions.get_last_partition_key(),
                run_config=run_config,
                raise_on_error=False,
            )
        )
    failures = [str(e.event_specific_data.error)[:3000] for e in result.all_events if e.is_step_failure]
    assert result.success, failures
    return result


def tiny(**overrides) -> SourcesResource:
    """A company just big enough for the nightly to train a model (1,000 leads, 120 conversions), with its
    history up to yesterday, the latest partition."""
    return SourcesResource(synthetic_scale=1_200, **overrides)


@pytest.fixture(scope="module")
def first_night(tmp_path_factory) -> Path:
    """The tiny company after one nightly run (with its sandbox state beside the warehouse)."""
    root = tmp_path_factory.mktemp("first_night")
    with pytest.MonkeyPatch.context() as monkeypatch:
        nightly(root, root / "warehouse.duckdb", tiny(), monkeypatch, history=True)
    return root


@pytest.fixture
def night(tmp_path, first_night) -> Path:
    """A private copy of the first night's warehouse and CRM sandbox."""
    for name in ("warehouse.duckdb", "crm.sqlite"):
        shutil.copy(first_night / name, tmp_path / name)
    return tmp_path / "warehouse.duckdb"


def crm_contact(warehouse: Path, lead_id: str) -> dict[str, str]:
    hubspot_id = query(warehouse, "SELECT crm_id FROM activation.sync_state WHERE destination = 'hubspot' "
                                  "AND record_key = ?", [lead_id])[0][0]  # fmt: skip
    with run_sandbox(state_path=warehouse.parent / "crm.sqlite") as sandbox:
        return {o["id"]: o["properties"] for o in sandbox.admin.hubspot_objects("contacts")}[hubspot_id]


def test_deleted_records_and_an_erased_person_leave_the_warehouse_and_their_crm_fields(
    tmp_path, night, monkeypatch
) -> None:
    """One night after: two prospect accounts and five scored people were deleted in the CRM (the export lacks
    them and their activity), and a sixth person asked to be erased (the export still contains them)."""
    rows = query(
        night,
        """SELECT lead_id, email, hubspot_contact_id FROM lead_scores JOIN lead_crm_ids USING (lead_id)
            WHERE as_of = (SELECT max(as_of) FROM lead_scores) AND hubspot_contact_id IS NOT NULL
            ORDER BY 1 LIMIT 6""",
    )
    leads = [r[0] for r in rows]
    scored, (erased, email, hubspot_id) = leads[:5], rows[5]
    assert all("leadscore_score" in crm_contact(night, lead) for lead in leads)
    with duckdb.connect(str(night)) as con:
        accounts = [r[0] for r in con.execute(
            """SELECT account_id FROM raw.accounts a WHERE NOT EXISTS (SELECT 1 FROM raw.opportunities o
               WHERE o.account_id = a.account_id) AND NOT EXISTS (SELECT 1 FROM raw.product_users u
               WHERE u.account_id = a.account_id) ORDER BY account_id LIMIT 2""").fetchall()]  # fmt: skip
        gone = con.execute(
            f"SELECT contact_id FROM raw.contacts WHERE account_id IN {tuple(accounts)} "
            f"OR contact_id IN {tuple(scored)}"
        ).fetchall()
        gone_ids = tuple(r[0] for r in gone)
        con.execute(f"DELETE FROM raw.marketing_events WHERE contact_id IN {gone_ids}")
        con.execute(f"UPDATE raw.opportunities SET contact_id = NULL WHERE contact_id IN {gone_ids}")
        con.execute(f"DELETE FROM raw.contacts WHERE contact_id IN {gone_ids}")
        con.execute(f"DELETE FROM raw.accounts WHERE account_id IN {tuple(accounts)}")
        export_raw(con, tmp_path / "export", "csv")
        report = erase(con, emails=[email], requested_by="dpo ticket 4711")
    assert report.crm_clears_pending == 2  # their record in HubSpot and in Salesforce
    nightly(tmp_path, night, SourcesResource(kind="files", files_dir=str(tmp_path / "export")), monkeypatch)
    for table in ("lead_features", "lead_scores", "lead_crm_ids"):
        assert query(night, f"SELECT count(*) FROM {table} WHERE lead_id IN {tuple(scored)}")[0][0] == 0, table
    for table in ("account_metrics", "account_metrics_daily", "account_crm_ids"):
        assert query(night, f"SELECT count(*) FROM {table} WHERE account_id IN {tuple(accounts)}")[0][0] == 0
    assert query(night, "SELECT count(DISTINCT as_of) FROM lead_features")[0][0] > 1, "the rest of history stays"
    for lead in scored:  # the CRM still holds the records here: leadscore's fields are emptied
        assert not any(name.startswith("leadscore_") for name in crm_contact(night, lead))
    # The erased person: nowhere in the warehouse (the load kept them out), fields emptied, then forgotten.
    assert traces(night, {email, erased, hubspot_id}) == []
    with run_sandbox(state_path=night.parent / "crm.sqlite") as sandbox:
        contact = {o["id"]: o["properties"] for o in sandbox.admin.hubspot_objects("contacts")}[hubspot_id]
    assert not any(name.startswith("leadscore_") for name in contact)
    assert query(night, "SELECT count(*) FROM governance.erasures")[0][0] == 1


def test_another_company_loaded_onto_an_existing_warehouse_still_builds(tmp_path, night, monkeypatch) -> None:
    result = nightly(tmp_path, night, tiny(synthetic_seed=8), monkeypatch)
    scored = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"lead_scores", "hubspot_sync", "salesforce_sync"} <= scored
