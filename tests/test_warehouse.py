"""The dbt project on a tiny synthetic warehouse: builds with every test green, quarantines bad rows,
stays point in time (a planted leak is caught), and rebuilds exactly the days it is asked for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.conftest import DBT_PROJECT, query, run_dbt


def test_every_model_and_column_is_described_and_tested(built_warehouse):
    manifest = json.loads((built_warehouse.parent / "dbt-dbt/target/manifest.json").read_text())
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    tested = {
        parent
        for n in manifest["nodes"].values()
        if n["resource_type"] == "test"
        for parent in ([n["attached_node"]] if n.get("attached_node") else n["depends_on"]["nodes"])
    }
    assert len(models) >= 20
    for name, node in models.items():
        assert node["description"].strip(), f"{name} has no description"
        assert node["unique_id"] in tested, f"{name} has no tests"
        actual = [
            c
            for (c,) in query(
                built_warehouse,
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
                [node["schema"], node["alias"]],
            )
        ]
        documented = {c: v["description"] for c, v in node["columns"].items()}
        missing = [c for c in actual if not documented.get(c, "").strip()]
        assert not missing, f"{name}: columns without a description: {missing}"


def test_marts_are_populated_and_consistent(built_warehouse):
    accounts, customers, arr, features, labelled = query(
        built_warehouse,
        """SELECT (SELECT count(*) FROM account_metrics),
                  (SELECT count(*) FROM account_metrics WHERE customer_status = 'customer'),
                  (SELECT sum(arr) FROM account_metrics),
                  (SELECT count(*) FROM lead_features),
                  (SELECT count(converted_90d) FROM lead_labels)""",
    )[0]
    assert accounts > 250 and 0 < customers < accounts and arr > 0
    assert 0 < labelled < features
    latest_daily, current = query(
        built_warehouse,
        """SELECT (SELECT sum(arr) FROM account_metrics_daily
                   WHERE as_of = (SELECT max(as_of) FROM account_metrics_daily)),
                  (SELECT sum(arr) FROM account_metrics)""",
    )[0]
    assert latest_daily == pytest.approx(current), "current metrics equal the latest day of the history"


def test_dirty_rows_are_quarantined_with_reasons_not_passed_on(built_warehouse):
    reasons = {r for (r,) in query(built_warehouse, "SELECT DISTINCT reason FROM staging.quarantine")}
    assert {"malformed email", "unknown event_type", "occurred_at is in the future", "negative amount"} <= reasons
    leaked = query(
        built_warehouse,
        """SELECT count(*) FROM staging.stg_marketing_events
           WHERE cast(event_id AS VARCHAR) IN (SELECT record_id FROM staging.quarantine
                                               WHERE source_table = 'marketing_events'
                                                 AND reason NOT LIKE 'contact quarantined:%')""",
    )[0][0]
    assert leaked == 0
    # no duplicate contacts survive staging, and test accounts stop before intermediate
    assert query(built_warehouse, "SELECT count(*) - count(DISTINCT email) FROM staging.stg_contacts")[0][0] == 0
    assert (
        query(built_warehouse, "SELECT count(*) FROM intermediate.int_accounts WHERE account_name ILIKE 'test%'")[0][0]
        == 0
    )


def test_planted_bad_rows_land_in_quarantine(warehouse_copy):
    with duckdb.connect(str(warehouse_copy)) as con:
        con.execute("""
            INSERT INTO raw.payments
                VALUES ('P-BAD-1', 'I-00000001', -10.0, TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-02');
            INSERT INTO raw.contacts (contact_id, account_id, email, first_name, last_name, title, lead_source,
                                      utm_campaign, marketing_consent, created_at, _loaded_at)
                SELECT 'L-BAD-1', account_id, 'no-at-sign.example.com', 'A', 'B', NULL, 'referral', 'cmp-100', true,
                       TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-02' FROM raw.accounts LIMIT 1;
            INSERT INTO raw.marketing_events VALUES
                (-1, 'L-0000001', 'page_view', '/pricing', TIMESTAMP '2027-01-01', TIMESTAMP '2026-01-02'),
                (-2, 'L-0000001', 'carrier_pigeon', NULL, TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-02');
        """)
    run_dbt(warehouse_copy, "build", "--select", "staging", "quarantine")
    got = dict(
        query(
            warehouse_copy,
            "SELECT record_id, reason FROM staging.quarantine WHERE record_id IN ('P-BAD-1', 'L-BAD-1', '-1', '-2')",
        )
    )
    assert got == {
        "P-BAD-1": "negative amount",
        "L-BAD-1": "malformed email",
        "-1": "occurred_at is in the future",
        "-2": "unknown event_type",
    }
    assert query(warehouse_copy, "SELECT count(*) FROM staging.stg_payments WHERE payment_id = 'P-BAD-1'")[0][0] == 0


def test_a_planted_leak_is_caught_by_the_point_in_time_test(tmp_path, warehouse_copy):
    """Make lead_features count events known one day after the cutoff: the singular test must fail."""
    project = tmp_path / "leaky"
    shutil.copytree(DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs"))
    model = project / "models/marts/lead_features.sql"
    source = model.read_text()
    assert "a.known_date <= l.as_of\n" in source
    model.write_text(source.replace("a.known_date <= l.as_of\n", "a.known_date <= l.as_of + 1\n"))
    # A full refresh rebuilds the history, where the day after each cutoff has data to leak.
    result = run_dbt(
        warehouse_copy, "build", "--select", "lead_features", "--full-refresh", project_dir=project, check=False
    )
    assert result.returncode != 0
    assert "FAIL" in result.stdout and "assert_lead_features_point_in_time" in result.stdout
    # The honest model passes the same test on the same data.
    ok = run_dbt(warehouse_copy, "build", "--select", "lead_features", "--full-refresh", check=False)
    assert ok.returncode == 0, ok.stdout[-3000:]


def day_fingerprints(path: Path, table: str) -> dict:
    """Per as_of day, the row count and a hash of every value (but which dbt run wrote the row)."""
    columns = "* EXCLUDE (built_by_invocation)" if table == "lead_features" else "*"
    return dict(
        query(path, f"SELECT as_of, (count(*), sum(hash(t))) FROM (SELECT {columns} FROM {table}) AS t GROUP BY as_of")
    )


def test_a_partition_run_writes_exactly_its_days_and_is_idempotent(warehouse_copy):
    before = day_fingerprints(warehouse_copy, "lead_features")
    last = max(before)
    days = ["2026-06-24", "2026-06-25"]  # not on the weekly grid (the grid is on Mondays)
    vars_ = f'{{min_date: "{days[0]}", max_date: "{days[1]}", snapshot_every_days: 1}}'
    run_dbt(warehouse_copy, "build", "--select", "account_metrics_daily", "lead_features", "--vars", vars_)
    after = day_fingerprints(warehouse_copy, "lead_features")
    new_days = {str(d) for d in set(after) - set(before)}
    assert new_days == set(days)
    assert {d: v for d, v in after.items() if str(d) not in days} == before, "other days untouched"
    run_dbt(warehouse_copy, "build", "--select", "account_metrics_daily", "lead_features", "--vars", vars_)
    assert day_fingerprints(warehouse_copy, "lead_features") == after, "re-running changes nothing"
    assert last in after


def test_docs_generate(warehouse_copy):
    run_dbt(warehouse_copy, "docs", "generate")


def test_real_descriptive_values_pass_as_other_with_a_warning_and_are_reported(tmp_path, tiny_raw_warehouse):
    """A real CRM's own industries, countries, bands and lead sources are not in the known lists: the
    first build still succeeds, their rows reach the marts as `other` (`unknown` when empty), a warning
    counts them per column and staging.unknown_values names each raw value. Event types stay strict."""
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(tiny_raw_warehouse, path)
    with duckdb.connect(str(path)) as con:
        con.execute("""
            UPDATE raw.accounts SET industry = 'Biotechnology', country = 'Mexico' WHERE account_id = 'A-0000001';
            UPDATE raw.accounts SET industry = 'Aerospace & Defense', country = NULL, employee_band = '10,000+'
                WHERE account_id = 'A-0000002';
            UPDATE raw.accounts SET industry = ' Financial Services ', country = 'mx' WHERE account_id = 'A-0000003';
            UPDATE raw.contacts SET lead_source = 'Trade Show' WHERE account_id = 'A-0000001';
            INSERT INTO raw.marketing_events VALUES
                (-1, 'L-0000001', ' PAGEVIEW ', '/pricing', TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-02'),
                (-2, 'L-0000001', 'Page View', '/pricing', TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-02');
        """)
        trade_show = con.execute("SELECT count(*) FROM raw.contacts WHERE lead_source = 'Trade Show'").fetchall()[0][0]
    result = run_dbt(path, "build")  # fails the test if anything errors

    outcomes = {
        r["unique_id"].split(".")[2]: (r["status"], r["failures"])
        for r in json.loads((path.parent / "dbt-dbt/target/run_results.json").read_text())["results"]
        if r["unique_id"].startswith("test.")
    }
    assert outcomes["no_other_values_stg_accounts_industry"] == ("warn", 2)
    assert outcomes["no_other_values_stg_accounts_country"] == ("warn", 1)
    assert outcomes["no_other_values_stg_accounts_employee_band"] == ("warn", 1)
    assert outcomes["no_other_values_stg_contacts_lead_source"][0] == "warn"
    assert "WARN" in result.stdout

    report = {
        (t, c, v): n
        for t, c, v, n in query(path, "SELECT * FROM staging.unknown_values WHERE column_name <> 'department'")
    }
    quarantined_trade_show = query(
        path,
        """SELECT count(*) FROM staging.quarantine
           WHERE source_table = 'contacts' AND raw_row->>'lead_source' = 'Trade Show'""",
    )[0][0]
    assert report == {
        ("accounts", "industry", "Biotechnology"): 1,
        ("accounts", "industry", "Aerospace & Defense"): 1,
        ("accounts", "country", "Mexico"): 1,
        ("accounts", "employee_band", "10,000+"): 1,
        ("contacts", "lead_source", "Trade Show"): trade_show - quarantined_trade_show,
    }
    accounts = {
        a: (i, c, b)
        for a, i, c, b in query(
            path,
            """SELECT account_id, industry, country, employee_band FROM intermediate.int_accounts
               WHERE account_id IN ('A-0000001', 'A-0000002', 'A-0000003')""",
        )
    }
    assert accounts["A-0000001"][:2] == ("other", "other")
    assert accounts["A-0000002"] == ("other", "unknown", "other")
    assert accounts["A-0000003"][:2] == ("financial_services", "MX"), "cleaned, every ISO code known, not reported"
    assert not query(path, "SELECT 1 FROM staging.quarantine WHERE record_id IN ('A-0000001', 'A-0000002')")
    assert query(path, "SELECT count(*) FROM account_metrics WHERE account_id IN ('A-0000001', 'A-0000002')")[0][0] == 2
    features = query(
        path,
        """SELECT count(*), count(*) FILTER (WHERE industry = 'other' AND country = 'other'
                                              AND lead_source IN ('other', 'unknown'))
           FROM lead_features WHERE account_id = 'A-0000001'""",
    )[0]
    assert features[0] > 0 and features[0] == features[1]
    assert query(path, "SELECT count(*) FROM staging.stg_contacts WHERE lead_source = 'other'")[0][0] > 0
    # an event type the features cannot count is still quarantined; another spelling of a known one is cleaned
    assert dict(query(path, "SELECT record_id, reason FROM staging.quarantine WHERE record_id IN ('-1', '-2')")) == {
        "-1": "unknown event_type"
    }
    assert query(path, "SELECT event_type FROM staging.stg_marketing_events WHERE event_id = -2") == [("page_view",)]


def test_synonyms_map_other_spellings_to_known_values(warehouse_copy):
    """var value_synonyms: the generator's `pageview` events count as page views, `sms_send` stays
    quarantined; a synonym of a descriptive value is its known value, not `other`."""
    with duckdb.connect(str(warehouse_copy)) as con:
        con.execute("UPDATE raw.accounts SET industry = 'Biotechnology' WHERE account_id = 'A-0000001'")
    synonyms = {"event_type": {"pageview": "page_view"}, "industry": {"biotechnology": "healthcare"}}
    vars_ = json.dumps({"value_synonyms": synonyms})
    run_dbt(warehouse_copy, "build", "--select", "staging", "quarantine", "--vars", vars_)
    quarantined = dict(
        query(
            warehouse_copy,
            """SELECT raw_row->>'event_type', count(*) FROM staging.quarantine
               WHERE reason = 'unknown event_type' GROUP BY ALL""",
        )
    )
    assert set(quarantined) == {"sms_send"}
    pageviews = query(
        warehouse_copy,
        """SELECT count(*) FROM staging.stg_marketing_events AS e
           JOIN raw.marketing_events AS r USING (event_id) WHERE r.event_type = 'pageview'""",
    )[0][0]
    assert pageviews > 0
    assert query(warehouse_copy, "SELECT industry FROM staging.stg_accounts WHERE account_id = 'A-0000001'") == [
        ("healthcare",)
    ]
    assert not query(warehouse_copy, "SELECT 1 FROM staging.unknown_values WHERE column_name = 'industry'")
