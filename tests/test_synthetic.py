"""The synthetic generator: deterministic, idempotent, realistic, and dirty in the documented ways."""

from __future__ import annotations

import gc
import weakref

import duckdb
import numpy as np
import pandas as pd
import pytest

from activation.salesforce_ids import make_salesforce_id, normalize_salesforce_id
from ml.sources import synthetic
from ml.sources.schema import RAW_TABLES
from ml.sources.synthetic import load_synthetic, oracle_probability, salesforce_ids
from tests.conftest import query, tiny_config


def table_fingerprints(con: duckdb.DuckDBPyConnection, schema: str = "raw") -> dict[str, tuple]:
    """Row count and an order-independent hash of every table's content."""
    out = {}
    for t in RAW_TABLES:
        out[t.name] = con.execute(f"SELECT count(*), sum(hash(t)) FROM {schema}.{t.name} AS t").fetchall()[0]
    return out


def test_same_seed_gives_identical_data_and_another_seed_does_not(tmp_path):
    fingerprints = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        with duckdb.connect(str(tmp_path / f"{name}.duckdb")) as con:
            load_synthetic(con, tiny_config(n_accounts=80, seed=seed))
            fingerprints.append(table_fingerprints(con))
    assert fingerprints[0] == fingerprints[1]
    assert fingerprints[0]["marketing_events"] != fingerprints[2]["marketing_events"]


def test_loading_twice_replaces_rather_than_appends(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        first = load_synthetic(con, tiny_config(n_accounts=50))
        crm = crm_fingerprints(con)
        second = load_synthetic(con, tiny_config(n_accounts=50))
        assert first == second
        assert con.execute("SELECT count(*) FROM raw.contacts").fetchall()[0][0] == first["contacts"]
        assert crm_fingerprints(con) == crm


def test_realistic_rates_history_and_scale(tiny_raw_warehouse):
    contacts, won = query(
        tiny_raw_warehouse,
        "SELECT (SELECT count(*) FROM raw.contacts), (SELECT count(*) FROM raw.opportunities WHERE is_won)",
    )[0]
    assert 0.02 <= won / contacts <= 0.15, "lead-to-customer conversion should be single digits to low teens"
    first, last = query(tiny_raw_warehouse, "SELECT min(created_at), max(created_at) FROM raw.contacts")[0]
    assert (last - first).days >= 540, "at least 18 months of history"
    events_per_lead = query(tiny_raw_warehouse, "SELECT count(*) FROM raw.marketing_events")[0][0] / contacts
    assert events_per_lead > 20


def test_behaviour_carries_signal_of_different_strength(tiny_raw_warehouse):
    """Converters view pricing pages far more than blog posts, relative to non-converters."""
    rows = dict(
        query(
            tiny_raw_warehouse,
            """
            WITH conv AS (SELECT DISTINCT contact_id FROM raw.opportunities WHERE is_won)
            SELECT CASE WHEN page_path LIKE '/pricing%' THEN 'pricing' ELSE 'blog' END,
                   avg((e.contact_id IN (SELECT contact_id FROM conv))::INT)
            FROM raw.marketing_events e
            WHERE event_type = 'page_view' AND (page_path LIKE '/pricing%' OR page_path LIKE '/blog%')
            GROUP BY 1
            """,
        )
    )
    assert rows["pricing"] > 1.5 * rows["blog"]


def test_dirt_is_present(tiny_raw_warehouse):
    q = lambda sql: query(tiny_raw_warehouse, sql)[0][0]  # noqa: E731
    assert q("SELECT count(*) - count(DISTINCT lower(trim(email))) FROM raw.contacts") > 0, "duplicates"
    assert q("SELECT count(*) FROM raw.contacts WHERE NOT regexp_full_match(email, '^[^@ ]+@[^@ ]+$')") > 0
    assert q("SELECT count(*) FROM raw.contacts WHERE title IS NULL") > 0, "missing titles"
    assert q("SELECT count(*) FROM raw.accounts WHERE industry <> lower(trim(industry))") > 0, "casing"
    assert q("SELECT count(*) FROM raw.accounts WHERE account_name ILIKE '%test%'") > 0, "test accounts"
    assert q("SELECT count(*) FROM raw.marketing_events WHERE occurred_at > _loaded_at") > 0, "future"
    assert q("SELECT count(*) FROM raw.marketing_events WHERE _loaded_at - occurred_at > INTERVAL 1 DAY") > 0, "late"
    assert q("SELECT count(*) FROM raw.marketing_events WHERE event_type IN ('pageview', 'sms_send')") > 0
    assert q("SELECT count(*) FROM raw.invoices WHERE amount < 0") > 0


def test_oracle_is_separate_and_consistent(tiny_raw_warehouse):
    n_truth, n_contacts, p_min, p_max = query(
        tiny_raw_warehouse,
        "SELECT (SELECT count(*) FROM oracle.lead_truth), (SELECT count(*) FROM raw.contacts),"
        " min(p_convert), max(p_convert) FROM oracle.lead_truth",
    )[0]
    assert n_truth == n_contacts
    assert 0.0 <= p_min < p_max <= 1.0


def test_oracle_probability_matches_its_definition():
    p, start = np.array([0.5, 0.5, 0.5, 0.0]), np.zeros(4)
    as_of = np.array([0.0, 65.0, 200.0, 0.0])
    got = oracle_probability(p, start, as_of, delay_min=10.0, delay_max=110.0, horizon_days=90.0)
    # day 0: window (0, 90] covers 80 of the 100 possible days
    assert got[0] == pytest.approx(0.5 * 0.8)
    # day 65: 55% may already have happened; the remaining 45% all fall in the window
    assert got[1] == pytest.approx(0.5 * 0.45 / (1 - 0.5 * 0.55))
    assert got[2] == 0.0 and got[3] == 0.0


# -- the CRM the raw tables are an export of ---------------------------------------------------------------
CRM_CONTRACT = {
    "hubspot_contacts": [
        ("id", "VARCHAR"),
        ("email", "VARCHAR"),
        ("firstname", "VARCHAR"),
        ("lastname", "VARCHAR"),
        ("hubspot_owner_id", "VARCHAR"),
    ],
    "hubspot_companies": [
        ("id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("domain", "VARCHAR"),
        ("hubspot_owner_id", "VARCHAR"),
    ],
    "hubspot_owners": [
        ("id", "VARCHAR"),
        ("email", "VARCHAR"),
        ("firstName", "VARCHAR"),
        ("lastName", "VARCHAR"),
        ("userId", "VARCHAR"),
        ("archived", "BOOLEAN"),
    ],
    "salesforce_users": [
        ("Id", "VARCHAR"),
        ("FirstName", "VARCHAR"),
        ("LastName", "VARCHAR"),
        ("Email", "VARCHAR"),
        ("IsActive", "BOOLEAN"),
    ],
    "salesforce_accounts": [("Id", "VARCHAR"), ("Name", "VARCHAR"), ("Website", "VARCHAR"), ("OwnerId", "VARCHAR")],
    "salesforce_leads": [
        ("Id", "VARCHAR"),
        ("FirstName", "VARCHAR"),
        ("LastName", "VARCHAR"),
        ("Company", "VARCHAR"),
        ("Email", "VARCHAR"),
        ("Status", "VARCHAR"),
        ("IsConverted", "BOOLEAN"),
        ("ConvertedContactId", "VARCHAR"),
        ("ConvertedAccountId", "VARCHAR"),
        ("OwnerId", "VARCHAR"),
    ],
    "salesforce_contacts": [
        ("Id", "VARCHAR"),
        ("FirstName", "VARCHAR"),
        ("LastName", "VARCHAR"),
        ("Email", "VARCHAR"),
        ("AccountId", "VARCHAR"),
        ("OwnerId", "VARCHAR"),
    ],
}
SALESFORCE_TABLES = {"salesforce_accounts": "001", "salesforce_leads": "00Q", "salesforce_contacts": "003"}


def column_values(path, sql: str) -> list:
    return [row[0] for row in query(path, sql)]


def crm_ids(path, table: str, column: str = "Id") -> set[str]:
    return set(column_values(path, f'SELECT "{column}" FROM synthetic_crm.{table}'))


def test_synthetic_crm_has_exactly_the_contract_the_sandbox_reads(tiny_raw_warehouse):
    rows = query(
        tiny_raw_warehouse,
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'synthetic_crm' ORDER BY table_name, ordinal_position",
    )
    found: dict[str, list] = {}
    for table, column, data_type in rows:
        found.setdefault(table, []).append((column, data_type))
    assert found == CRM_CONTRACT


def test_salesforce_ids_are_the_reference_helpers_ids():
    numbers = np.concatenate([[0, 1, 61, 62, 62**10 - 1], np.random.default_rng(3).integers(0, 62**10, 500)])
    for prefix in ("001", "00Q", "003"):
        got = [i.decode() for i in salesforce_ids(prefix, numbers)]
        assert got == [make_salesforce_id(prefix, int(n)) for n in numbers]
    with pytest.raises(ValueError):
        salesforce_ids("00Q", np.array([62**10]))


def test_crm_ids_have_their_shapes_and_are_unique(tiny_raw_warehouse):
    for table, prefix in SALESFORCE_TABLES.items():
        ids = column_values(tiny_raw_warehouse, f'SELECT "Id" FROM synthetic_crm.{table}')
        assert ids and len(ids) == len(set(ids)), f"{table}: ids are unique"
        assert all(i.startswith(prefix) and normalize_salesforce_id(i) == i for i in ids), f"{table}: canonical"
    for table, digits in (("hubspot_contacts", 11), ("hubspot_companies", 10)):
        ids = column_values(tiny_raw_warehouse, f"SELECT id FROM synthetic_crm.{table}")
        assert ids and len(ids) == len(set(ids)), f"{table}: ids are unique"
        assert all(i.isdigit() and len(i) == digits for i in ids), table
    # One HubSpot contact per address; addresses as HubSpot stores them, none when malformed.
    emails = column_values(tiny_raw_warehouse, "SELECT email FROM synthetic_crm.hubspot_contacts")
    present = [e for e in emails if e is not None]
    assert len(present) == len(set(present)) and all(e == e.strip().lower() and "@" in e for e in present)
    malformed = "NOT regexp_full_match(trim(email), '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$')"
    assert query(tiny_raw_warehouse, f"SELECT count(*) FROM raw.contacts WHERE {malformed}")[0][0] > 0
    assert None in emails, "a malformed address is not stored"


def test_every_exported_id_names_a_record_of_the_crm(tiny_raw_warehouse):
    exported = {
        ("accounts", "salesforce_account_id"): crm_ids(tiny_raw_warehouse, "salesforce_accounts"),
        ("contacts", "salesforce_lead_id"): crm_ids(tiny_raw_warehouse, "salesforce_leads"),
        ("contacts", "salesforce_contact_id"): crm_ids(tiny_raw_warehouse, "salesforce_contacts"),
        ("accounts", "hubspot_company_id"): crm_ids(tiny_raw_warehouse, "hubspot_companies", "id"),
        ("contacts", "hubspot_contact_id"): crm_ids(tiny_raw_warehouse, "hubspot_contacts", "id"),
    }
    for (table, column), records in exported.items():
        values = [v for v in column_values(tiny_raw_warehouse, f"SELECT {column} FROM raw.{table}") if v is not None]
        assert values, f"{table}.{column} is exported"
        canonical = {normalize_salesforce_id(v) if column.startswith("salesforce") else v for v in values}
        assert canonical <= records, f"{table}.{column}: {sorted(canonical - records)[:3]} are not in the CRM"


def test_every_consented_lead_is_a_hubspot_contact(tiny_raw_warehouse):
    """Found by id, or by e-mail where the export lacks the id: a nightly sync never misses one for good."""
    unmatched, consented, lagging = query(
        tiny_raw_warehouse,
        """
        SELECT count(*) FILTER (WHERE h.id IS NULL AND e.id IS NULL), count(*),
               count(*) FILTER (WHERE c.hubspot_contact_id IS NULL)
        FROM raw.contacts c
        LEFT JOIN synthetic_crm.hubspot_contacts h ON h.id = c.hubspot_contact_id
        LEFT JOIN synthetic_crm.hubspot_contacts e ON e.email = lower(trim(c.email))
        WHERE c.marketing_consent AND regexp_full_match(trim(c.email), '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$')
        """,
    )[0]
    assert consented > 1000 and unmatched == 0
    assert 0 < lagging < 0.1 * consented, "a few ids were not yet resolved by the ELT tool"
    # Without consent a person may be missing from HubSpot altogether.
    absent = query(
        tiny_raw_warehouse,
        """SELECT avg((lower(trim(c.email)) NOT IN (SELECT email FROM synthetic_crm.hubspot_contacts
                                                   WHERE email IS NOT NULL))::INT)
           FROM raw.contacts c WHERE NOT c.marketing_consent""",
    )[0][0]
    assert 0.1 < absent < 0.3


def test_converted_exactly_the_primary_contacts_of_opportunities(tiny_raw_warehouse):
    rows = query(
        tiny_raw_warehouse,
        """
        SELECT c.contact_id, c.salesforce_lead_id, c.salesforce_contact_id, a.salesforce_account_id,
               c.contact_id IN (SELECT contact_id FROM raw.opportunities) AS has_opportunity
        FROM raw.contacts c JOIN raw.accounts a USING (account_id)
        """,
    )
    leads = {
        r[0]: r[1:]
        for r in query(
            tiny_raw_warehouse,
            'SELECT "Id", "IsConverted", "Status", "ConvertedContactId", "ConvertedAccountId" '
            "FROM synthetic_crm.salesforce_leads",
        )
    }
    contacts = {
        r[0]: r[1] for r in query(tiny_raw_warehouse, 'SELECT "Id", "AccountId" FROM synthetic_crm.salesforce_contacts')
    }
    converted = 0
    for _contact, lead_id, contact_id, account_id, has_opportunity in rows:
        lead = leads.get(normalize_salesforce_id(lead_id)) if lead_id else None
        contact, account = normalize_salesforce_id(contact_id), normalize_salesforce_id(account_id)
        if has_opportunity:
            converted += 1
            assert lead is not None and contact is not None, "an opportunity's primary contact was converted"
            assert lead == (True, "Closed - Converted", contact, account)
            assert contacts[contact] == account, "the Contact is at the account's Account"
        else:
            assert lead is None or (lead[0] is False and lead[2] is None and lead[3] is None)
    assert converted == query(tiny_raw_warehouse, "SELECT count(DISTINCT contact_id) FROM raw.opportunities")[0][0]
    # Besides the converted people: Contacts created directly, Leads, and people not in Salesforce.
    direct, lead_only, absent, unconverted = query(
        tiny_raw_warehouse,
        """SELECT count(*) FILTER (WHERE salesforce_contact_id IS NOT NULL AND salesforce_lead_id IS NULL),
                  count(*) FILTER (WHERE salesforce_contact_id IS NULL AND salesforce_lead_id IS NOT NULL),
                  count(*) FILTER (WHERE salesforce_contact_id IS NULL AND salesforce_lead_id IS NULL),
                  count(*)
           FROM raw.contacts WHERE contact_id NOT IN (SELECT contact_id FROM raw.opportunities)""",
    )[0]
    assert 0.04 < direct / unconverted < 0.12 and 0.02 < absent / unconverted < 0.07 and lead_only > 0.75 * unconverted


def test_duplicates_share_the_hubspot_contact_but_are_leads_of_their_own(tiny_raw_warehouse):
    groups = query(
        tiny_raw_warehouse,
        """
        SELECT coalesce(list(hubspot_contact_id) FILTER (WHERE hubspot_contact_id IS NOT NULL), []),
               list(salesforce_lead_id ORDER BY created_at),
               list(salesforce_contact_id ORDER BY created_at)
        FROM raw.contacts GROUP BY lower(trim(email)) HAVING count(*) > 1
        """,
    )
    assert len(groups) > 20
    assert all(len(set(hubspot)) <= 1 for hubspot, _, _ in groups), "one HubSpot contact per address"
    assert sum(len(hubspot) == 2 for hubspot, _, _ in groups) > 10
    for _, leads, contacts in groups:
        duplicate_leads = [normalize_salesforce_id(i) for i in leads[1:]]
        assert None not in duplicate_leads and normalize_salesforce_id(leads[0]) not in duplicate_leads
        assert contacts[1:] == [None] * (len(contacts) - 1), "a duplicate was never converted"


def test_export_dirt_on_ids_keeps_every_id_readable(tiny_raw_warehouse):
    values = column_values(
        tiny_raw_warehouse,
        """SELECT unnest([salesforce_lead_id, salesforce_contact_id]) FROM raw.contacts
           UNION ALL SELECT salesforce_account_id FROM raw.accounts""",
    )
    ids = [v for v in values if v is not None]
    short = [v for v in ids if len(v) == 15]
    lowered = [v for v in ids if len(v) == 18 and v != normalize_salesforce_id(v)]
    assert all(normalize_salesforce_id(v) is not None for v in ids), "dirty, never malformed"
    assert 0.01 < len(short) / len(ids) < 0.04 and lowered and all(v == v.lower() for v in lowered)
    hubspot = column_values(tiny_raw_warehouse, "SELECT hubspot_contact_id FROM raw.contacts")
    assert all(v.isdigit() for v in hubspot if v is not None)


def crm_fingerprints(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    return {
        t: con.execute(f"SELECT count(*), sum(hash(t)) FROM synthetic_crm.{t} AS t").fetchall()[0] for t in CRM_CONTRACT
    }


def test_the_crm_is_deterministic_and_never_shifts_the_data_the_model_learns_from(tmp_path, monkeypatch):
    def load(name: str, seed: int = 7) -> tuple[dict, dict]:
        with duckdb.connect(str(tmp_path / f"{name}.duckdb")) as con:
            load_synthetic(con, tiny_config(n_accounts=80, seed=seed))
            con.execute("ALTER TABLE raw.accounts DROP COLUMN hubspot_company_id")
            con.execute("ALTER TABLE raw.accounts DROP COLUMN salesforce_account_id")
            for column in ("hubspot_contact_id", "salesforce_lead_id", "salesforce_contact_id"):
                con.execute(f"ALTER TABLE raw.contacts DROP COLUMN {column}")
            return table_fingerprints(con), crm_fingerprints(con)

    raw, crm = load("a")
    assert load("b") == (raw, crm), "same seed, same CRM"
    assert load("c", seed=8)[1] != crm
    monkeypatch.setattr(synthetic, "CRM_STREAM", synthetic.CRM_STREAM + 1)
    other_raw, other_crm = load("d")
    assert other_raw == raw, "without its id columns, the data is the same whatever the CRM's draws"
    assert other_crm != crm


def test_product_usage_is_the_same_rows_whatever_its_chunks(tmp_path, monkeypatch):
    """Chunks of product usage only bound memory: the draws, and so every table, stay the same."""
    chunks: list[int] = []
    insert = synthetic._insert

    def counting_insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
        if table == "product_usage":
            chunks.append(len(frame))
        insert(con, table, frame)

    def load(name: str) -> tuple[dict, dict]:
        with duckdb.connect(str(tmp_path / f"{name}.duckdb")) as con:
            load_synthetic(con, tiny_config(n_accounts=80))
            return table_fingerprints(con), crm_fingerprints(con)

    monkeypatch.setattr(synthetic, "_insert", counting_insert)
    whole = load("whole")
    assert len(chunks) == 1
    chunks.clear()
    monkeypatch.setattr(synthetic, "USAGE_ROWS_PER_CHUNK", 500)
    assert load("chunked") == whole
    assert len(chunks) > 3 and max(chunks) <= 500


def test_a_frame_written_inside_the_load_transaction_is_freed_before_the_commit(tmp_path):
    """DuckDB keeps a registered frame (even unregistered) until the transaction ends; the load's frames must
    not be, or every chunk of events stays in memory until the commit."""
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("CREATE TABLE t (x BIGINT)")
        con.execute("BEGIN TRANSACTION")
        frame = pd.DataFrame({"x": np.arange(1_000)})
        alive = weakref.ref(frame)
        synthetic._run_on(con, "INSERT INTO t SELECT x FROM _rows", frame)
        del frame
        gc.collect()
        assert alive() is None
        con.execute("COMMIT")
        assert con.execute("SELECT count(*) FROM t").fetchall() == [(1_000,)]


def test_most_accounts_are_in_both_crms_and_every_account_with_an_opportunity_in_salesforce(tiny_raw_warehouse):
    hubspot, salesforce, opportunity_accounts_missing = query(
        tiny_raw_warehouse,
        """SELECT avg((hubspot_company_id IS NOT NULL)::INT), avg((salesforce_account_id IS NOT NULL)::INT),
                  count(*) FILTER (WHERE salesforce_account_id IS NULL
                                     AND account_id IN (SELECT account_id FROM raw.opportunities))
           FROM raw.accounts""",
    )[0]
    assert 0.94 < hubspot < 1.0 and 0.85 < salesforce < 0.98 and opportunity_accounts_missing == 0
