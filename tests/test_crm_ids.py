"""The CRM's record ids through the warehouse: the SQL normalisation is the Python one, malformed ids are
quarantined with a reason, dirty ids come out canonical, merging duplicates keeps ids, and the marts
carry the ids of every lead and account."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import duckdb
import pytest

from activation.salesforce_ids import KEY_PREFIXES, make_salesforce_id, normalize_salesforce_id
from tests.conftest import query, run_dbt


def salesforce_id_cases() -> list[str | None]:
    """Every form an export may carry, valid or not, for ids of the three objects."""
    rng = random.Random(5)
    cases: list[str | None] = [None, "", "   ", "00Q", "not an id", "00Q8d000-5fTjBv", "00Q8d000q5fTjBvEAÄ"]
    for prefix in ("001", "00Q", "003"):
        for number in [0, 61, 62**10 - 1, *(rng.randrange(62**10) for _ in range(25))]:
            canonical = make_salesforce_id(prefix, number)
            id15, suffix = canonical[:15], canonical[15:]
            mangled = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in canonical)
            cases += [
                canonical,
                id15,  # the 15-character form
                canonical.lower(),  # case mangled by a spreadsheet
                canonical.upper(),
                mangled,
                f"  {canonical} ",
                id15.lower() + suffix,  # a wrong case the suffix corrects
                id15.lower(),  # a 15-character id is taken as typed: another (valid) id
                id15 + "555",  # a suffix marking every character upper case, digits included
                id15 + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345") for _ in range(3)),
                id15 + suffix.lower(),
                id15 + "AA9",  # not a suffix character
                canonical[:14],
                canonical[:16],
                canonical[:17],
                canonical + "A",
                id15[:7] + "." + id15[8:],
                canonical[:9] + "_" + canonical[10:],
            ]
    return cases


def compile_inline(warehouse: Path, sql: str) -> str:
    """The SQL dbt compiles from ``sql`` with this project's macros."""
    result = run_dbt(warehouse, "compile", "--quiet", "--output", "json", "--inline", sql)
    return json.loads(result.stdout[result.stdout.index("{") :])["compiled"]


def run_on_values(sql: str, values: list[str | None]) -> list[tuple]:
    with duckdb.connect() as con:
        con.execute("CREATE TABLE cases (n INTEGER, id VARCHAR)")
        con.executemany("INSERT INTO cases VALUES (?, ?)", list(enumerate(values)))
        return con.execute(sql).fetchall()


def python_malformed(value: str | None, prefix: str) -> bool:
    if value is None or not value.strip():
        return False
    canonical = normalize_salesforce_id(value)
    return canonical is None or not canonical.startswith(prefix)


def test_the_sql_normalisation_is_the_python_one(tmp_path):
    cases = salesforce_id_cases()
    hubspot = [None, "", " ", "123", " 4567 ", "12a", "-5", "1.0", "1" * 20, "1" * 21, "٣"]
    sql = compile_inline(
        tmp_path / "warehouse.duckdb",
        "select n, {{ normalize_salesforce_id('id') }},"
        " {{ salesforce_id_is_malformed('id', '001') }}, {{ salesforce_id_is_malformed('id', '00Q') }},"
        " {{ salesforce_id_is_malformed('id', '003') }}, {{ hubspot_id_is_malformed('id') }},"
        " {{ clean_hubspot_id('id') }} from cases order by n",
    )
    got = run_on_values(sql, cases)
    assert [row[1] for row in got] == [normalize_salesforce_id(c) for c in cases]
    prefixes = (KEY_PREFIXES["Account"], KEY_PREFIXES["Lead"], KEY_PREFIXES["Contact"])
    assert [tuple(row[2:5]) for row in got] == [tuple(python_malformed(c, p) for p in prefixes) for c in cases]
    # the cases cover every branch: canonical, restored, appended, and rejected
    results = [row[1] for row in got]
    assert {len(r) for r in results if r} == {18} and results.count(None) > 100
    assert any(c and len(c.strip()) == 18 and r and r != c.strip() for c, r in zip(cases, results, strict=True))

    got = run_on_values(sql, hubspot)
    valid = [v is not None and re.fullmatch(r"[0-9]{1,20}", v.strip()) is not None for v in hubspot]
    blank = [v is None or not v.strip() for v in hubspot]
    assert [row[5] for row in got] == [not ok and not empty for ok, empty in zip(valid, blank, strict=True)]
    assert [row[6] for row in got] == [None if empty else v.strip() for v, empty in zip(hubspot, blank, strict=True)]


ACCOUNT_ID = make_salesforce_id("001", 9_000_001)
LEAD_IDS = [make_salesforce_id("00Q", 9_000_000 + i) for i in range(4)]
CONTACT_IDS = [make_salesforce_id("003", 9_000_000 + i) for i in range(8)]


def plant_crm_rows(path: Path) -> None:
    """Accounts and contacts with dirty, malformed and merged CRM ids (see the test for what each means)."""
    accounts = [
        ("A-CRM-1", " 4242 ", ACCOUNT_ID[:15]),
        ("A-CRM-2", "", ACCOUNT_ID.lower()),
        ("A-CRM-3", None, LEAD_IDS[0]),
        ("A-CRM-4", "12-34", None),
        ("A-CRM-5", None, "001" + "z" * 12 + "555"),
    ]
    c = CONTACT_IDS  # short, for the table below
    contacts = [  # contact_id, email, created day, hubspot, lead, contact
        ("L-CRM-01", "pat@planted.example", 1, None, LEAD_IDS[1][:15], None),
        ("L-CRM-02", "PAT@PLANTED.EXAMPLE", 5, "777", LEAD_IDS[2], c[2].lower()),
        ("L-CRM-03", "kim@planted.example", 1, "555", None, c[3]),
        ("L-CRM-04", "Kim@planted.example", 3, "555", None, c[4]),
        ("L-CRM-05", "KIM@planted.example", 2, "555", None, c[5]),
        ("L-CRM-06", "lou@planted.example", 1, None, LEAD_IDS[3], None),
        ("L-CRM-07", "LOU@planted.example", 4, "888", None, c[7]),
        ("L-CRM-08", "Lou@planted.example", 3, "888", None, c[6]),
        ("L-CRM-09", "bad1@planted.example", 1, None, c[0], None),
        ("L-CRM-10", "bad2@planted.example", 1, None, None, "not-an-id"),
        ("L-CRM-11", "bad3@planted.example", 1, "abc", None, None),
        ("L-CRM-12", "ann@planted.example", 1, "", "  ", ""),
    ]
    with duckdb.connect(str(path)) as con:
        con.executemany(
            "INSERT INTO raw.accounts (account_id, hubspot_company_id, salesforce_account_id, account_name, domain,"
            " industry, employee_band, country, revenue_band, founded_year, created_at, _loaded_at) VALUES"
            " (?, ?, ?, 'Planted Co', 'planted.example', 'software', '11-50', 'US', '1-10M', 2001,"
            " TIMESTAMP '2025-12-01', TIMESTAMP '2025-12-02')",
            accounts,
        )
        con.executemany(
            "INSERT INTO raw.contacts (contact_id, email, created_at, hubspot_contact_id, salesforce_lead_id,"
            " salesforce_contact_id, account_id, first_name, last_name, title, lead_source, utm_campaign,"
            " marketing_consent, _loaded_at) VALUES (?, ?, TIMESTAMP '2026-01-01' + to_days(?::INTEGER), ?, ?, ?,"
            " 'A-CRM-1', 'P', 'Q', 'CTO', 'referral', 'cmp-100', true, TIMESTAMP '2026-01-20')",
            contacts,
        )


def test_malformed_ids_are_quarantined_and_dirty_ids_come_out_canonical(warehouse_copy):
    plant_crm_rows(warehouse_copy)
    run_dbt(warehouse_copy, "build", "--select", "+lead_crm_ids", "+account_crm_ids", "quarantine")
    reasons = dict(
        query(warehouse_copy, "SELECT record_id, reason FROM staging.quarantine WHERE record_id LIKE '%-CRM-%'")
    )
    assert reasons == {
        "A-CRM-3": "malformed salesforce_account_id",  # a Lead id in the Account column
        "A-CRM-4": "malformed hubspot_company_id",
        "A-CRM-5": "malformed salesforce_account_id",  # the suffix marks digits as upper case
        "L-CRM-09": "malformed salesforce_lead_id",  # a Contact id in the Lead column
        "L-CRM-10": "malformed salesforce_contact_id",
        "L-CRM-11": "malformed hubspot_contact_id",
    }
    accounts = dict(
        (a, (h, s))
        for a, h, s in query(
            warehouse_copy,
            "SELECT account_id, hubspot_company_id, salesforce_account_id FROM account_crm_ids "
            "WHERE account_id LIKE 'A-CRM-%'",
        )
    )
    assert accounts == {"A-CRM-1": ("4242", ACCOUNT_ID), "A-CRM-2": (None, ACCOUNT_ID)}
    leads = {
        row[0]: row[1:]
        for row in query(
            warehouse_copy,
            "SELECT lead_id, email, hubspot_contact_id, salesforce_lead_id, salesforce_contact_id"
            " FROM lead_crm_ids WHERE lead_id LIKE 'L-CRM-%'",
        )
    }
    assert leads == {
        # the survivor's Lead (from its 15-character form); HubSpot id and (lower-cased) Contact of a duplicate
        "L-CRM-01": ("pat@planted.example", "777", LEAD_IDS[1], CONTACT_IDS[2]),
        # the survivor's own Contact wins over its duplicates'
        "L-CRM-03": ("kim@planted.example", "555", None, CONTACT_IDS[3]),
        # no Contact of its own: the earliest merged duplicate's (created on day 3, not day 4)
        "L-CRM-06": ("lou@planted.example", "888", LEAD_IDS[3], CONTACT_IDS[6]),
        # empty ids are missing, not malformed
        "L-CRM-12": ("ann@planted.example", None, None, None),
    }


def test_marts_carry_the_crm_ids_of_every_lead_and_account(built_warehouse):
    lead_rows, distinct, int_leads, missing = query(
        built_warehouse,
        """SELECT count(*), count(DISTINCT lead_id), (SELECT count(*) FROM intermediate.int_leads),
                  (SELECT count(*) FROM intermediate.int_leads WHERE lead_id NOT IN (SELECT lead_id FROM lead_crm_ids))
           FROM lead_crm_ids""",
    )[0]
    assert lead_rows == distinct == int_leads > 2000 and missing == 0
    accounts, int_accounts = query(
        built_warehouse,
        "SELECT count(DISTINCT account_id), (SELECT count(*) FROM intermediate.int_accounts) FROM account_crm_ids",
    )[0]
    assert accounts == int_accounts > 250
    # The export's dirty ids (15-character, lower-cased) all name records of the CRM once normalised.
    checks = {
        ("lead_crm_ids", "salesforce_lead_id"): "salesforce_leads",
        ("lead_crm_ids", "salesforce_contact_id"): "salesforce_contacts",
        ("account_crm_ids", "salesforce_account_id"): "salesforce_accounts",
    }
    for (mart, column), crm_table in checks.items():
        present, unknown = query(
            built_warehouse,
            f"SELECT count({column}),"
            f' count(*) FILTER (WHERE {column} NOT IN (SELECT "Id" FROM synthetic_crm.{crm_table})) FROM {mart}',
        )[0]
        assert present > 0 and unknown == 0, f"{mart}.{column}"
    unreachable = query(
        built_warehouse,
        """SELECT count(*) FROM lead_crm_ids AS m JOIN intermediate.int_leads AS l USING (lead_id)
           WHERE l.has_marketing_consent AND m.hubspot_contact_id IS NULL
             AND m.email NOT IN (SELECT email FROM synthetic_crm.hubspot_contacts WHERE email IS NOT NULL)""",
    )[0][0]
    assert unreachable == 0, "every consented lead reaches its HubSpot contact, by id or by e-mail"


@pytest.mark.parametrize("mart", ["lead_crm_ids", "account_crm_ids"])
def test_crm_id_marts_are_current_marts(built_warehouse, mart):
    """Unpartitioned marts in the default schema, rebuilt with account_metrics every night."""
    manifest = json.loads((built_warehouse.parent / "dbt-dbt/target/manifest.json").read_text())
    node = manifest["nodes"][f"model.leadscore.{mart}"]
    assert node["schema"] == "main" and node["config"]["materialized"] == "table"
    assert "daily_history" not in node["tags"] and node["fqn"][1] == "marts"
