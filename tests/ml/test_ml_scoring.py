"""Scoring: consent filter, reasons that agree with pred_contrib, reuse of unchanged reasons, 7-day change."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from ml.features import feature_hash
from ml.reasons import explain, factor_contributions
from ml.scoring import score_leads, write_scores


def test_reasons_agree_with_the_contributions_they_come_from(split, trained):
    rows = split.test.head(200)
    contrib = trained.bundle.contributions(rows)
    # pred_contrib adds up to the raw margin: the explanation is of the very score we publish.
    np.testing.assert_allclose(contrib.sum(axis=1), trained.bundle.margin(rows), rtol=1e-6, atol=1e-6)
    features = trained.bundle.features
    by_factor = factor_contributions(contrib, features)
    explained = explain(rows, contrib, features)
    checked = 0
    for i, reasons in enumerate(explained):
        positive = [r for r in reasons if r.impact > 0]
        negative = [r for r in reasons if r.impact < 0]
        assert reasons == positive + negative and len(positive) <= 3 and len(negative) <= 3
        assert [r.impact for r in positive] == sorted((r.impact for r in positive), reverse=True)
        assert [r.impact for r in negative] == sorted(r.impact for r in negative)
        values = by_factor[i]
        # Each reason's impact is exactly its factor's summed contribution, and nothing stronger was left out.
        for r in reasons:
            assert r.impact == values[features.factors.index(r.factor)]
        expected_top = sorted((v for v in values if v > 0), reverse=True)[:3]
        assert [r.impact for r in positive] == expected_top
        expected_bottom = sorted(v for v in values if v < 0)[:3]
        assert [r.impact for r in negative] == expected_bottom
        assert all(r.formatted().startswith("+ " if r.impact > 0 else "- ") and r.text for r in reasons)
        checked += bool(reasons)
    assert checked > 150


def test_each_phrase_reads_only_its_declared_inputs(split):
    """phrase_table phrases each distinct input once; that is only right if the inputs are all a phrase reads."""
    from ml.reasons import PHRASE_INPUTS, PHRASES

    records = split.test.sample(200, random_state=0).astype(object).to_dict("records")
    for factor, phrase in PHRASES.items():
        if not set(PHRASE_INPUTS[factor]) <= set(split.test.columns):
            continue  # a built-in phrase of a reason the dbt YAML no longer declares
        for row in records:
            # A phrase reading an undeclared column raises KeyError here.
            assert phrase({name: row[name] for name in PHRASE_INPUTS[factor]}) == phrase(row)


def test_scoring_encodes_once_and_matches_each_model_on_its_own(split, trained):
    from ml.bundle import to_percentile

    rows = split.test.head(300)
    predicted = trained.bundle.predict(rows)
    np.testing.assert_allclose(predicted["score"], 100 * trained.bundle.probability(rows))
    fit = to_percentile(trained.bundle.margin(rows, "fit"), trained.bundle.fit_reference)
    engagement = to_percentile(trained.bundle.margin(rows, "engagement"), trained.bundle.engagement_reference)
    np.testing.assert_array_equal(predicted["fit_score"], fit)
    np.testing.assert_array_equal(predicted["engagement_score"], engagement)


def test_pricing_reason_is_in_words():
    from ml.reasons import PHRASES

    row = {"pricing_views_7d": 3.0, "pricing_views_30d": 5.0}
    assert PHRASES["pricing"](row) == "3 pricing-page visits in the last 7 days"
    persona = {"seniority": "vp", "department": "engineering"}
    assert PHRASES["persona"](persona) == "VP in engineering"
    # Time-driven phrases speak in the buckets of the reuse signature, so a reused reason stays true.
    quiet = {"touches_7d": 0, "engagement_velocity": None}
    assert PHRASES["recency"]({**quiet, "days_since_last_touch": 8}) == "Last active 1-4 weeks ago"
    assert PHRASES["recency"]({**quiet, "days_since_last_touch": 29}) == "Last active 1-4 weeks ago"
    assert PHRASES["lead_age"]({"lead_age_days": 95}) == "Lead created 3 months ago"
    company = {"employee_band": "201-1000", "industry": "software", "revenue_band": None}
    assert PHRASES["company"](company) == "A 201-1000 employee software company"


def test_scoring_reuses_reasons_of_unchanged_leads_and_reports_the_7_day_change(split, trained, tmp_path):
    day = split.test["as_of"].max()
    rows = split.test[split.test["as_of"] == day].copy()
    rows.loc[rows.index[:5], "has_marketing_consent"] = False
    consented = rows["has_marketing_consent"]
    rows = pd.concat([rows[consented], rows[~consented]])  # consented first: index 10 below is scored
    version = "lead_scoring/1"
    first, stats = score_leads(rows, trained.bundle, version)
    assert (
        len(first) == consented.sum() < len(rows) and stats.reasons_computed == len(first) and stats.reasons_reused == 0
    )
    assert first["score_change_7d"].isna().all() and stats.drift is not None

    # A week later: same features for everyone but one lead, whose pricing visits jump.
    later = rows.assign(as_of=day + pd.Timedelta(days=7))
    changed = later.index[10]
    later.loc[changed, ["pricing_views_7d", "pricing_views_30d", "pricing_views_decayed"]] = [6, 9, 5.0]
    previous = first.assign(reasons=[["stored reason"] for _ in range(len(first))])
    second, stats = score_leads(later, trained.bundle, version, previous)
    assert stats.reasons_computed == 1 and stats.reasons_reused == len(second) - 1
    changed_lead = rows.loc[changed, "lead_id"]
    row = second.set_index("lead_id").loc[changed_lead]
    assert row["reasons"] != ["stored reason"]
    assert (second.loc[second["lead_id"] != changed_lead, "reasons"].map(tuple) == ("stored reason",)).all()
    before = first.set_index("lead_id")["score"]
    np.testing.assert_allclose(
        second.set_index("lead_id")["score_change_7d"], second.set_index("lead_id")["score"] - before
    )

    # A new model version recomputes everyone's reasons.
    _, stats = score_leads(later, trained.bundle, "lead_scoring/2", previous)
    assert stats.reasons_computed == len(second)
    assert (feature_hash(rows, trained.bundle.features, "a") != feature_hash(rows, trained.bundle.features, "b")).all()

    # Writing is idempotent per as_of and keeps reasons as a list.
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        assert write_scores(con, second, (day + pd.Timedelta(days=7)).date()) == len(second)
        assert write_scores(con, second, (day + pd.Timedelta(days=7)).date()) == len(second)
        stored = con.execute("SELECT reasons FROM main.lead_scores ORDER BY lead_id LIMIT 1").fetchall()[0][0]
        assert isinstance(stored, list) and stored
