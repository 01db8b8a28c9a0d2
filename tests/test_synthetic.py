"""The synthetic generator: deterministic, idempotent, realistic, and dirty in the documented ways."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from ml.sources.schema import RAW_TABLES
from ml.sources.synthetic import load_synthetic, oracle_probability
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
        second = load_synthetic(con, tiny_config(n_accounts=50))
        assert first == second
        assert con.execute("SELECT count(*) FROM raw.contacts").fetchall()[0][0] == first["contacts"]


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
