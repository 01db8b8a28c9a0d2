"""The known values are defined once (dbt/dbt_project.yml var known_values): the synthetic generator speaks
exactly that vocabulary, nothing it generates falls into `other` or is quarantined for an unknown value it
was not meant to have, and a known value spelled in a way staging never produces is caught by dbt."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml import warehouse as warehouse_lib
from ml.evaluate import RULE_POINTS
from ml.features import from_dbt_yaml, learn_categories, to_matrix
from ml.reasons import PHRASES, SENIORITY
from ml.sources import synthetic
from ml.sources.vocabulary import KNOWN_VALUES, load_known_values
from tests.conftest import query, run_dbt

DIRT_EVENT_TYPES = {"pageview", "sms_send"}


def test_the_generators_vocabularies_are_the_known_lists():
    generated = {
        "industry": synthetic.INDUSTRIES,
        "employee_band": synthetic.EMPLOYEE_BANDS,
        "revenue_band": synthetic.REVENUE_BANDS,
        "country": synthetic.COUNTRIES,
        "lead_source": synthetic.LEAD_SOURCES,
        "seniority": list(synthetic.SENIORITY_FIT),
        "department": list(synthetic.DEPARTMENT_FIT),
        "event_type": [e for e in synthetic.EVENT_TYPES if e not in DIRT_EVENT_TYPES],
        "opportunity_stage": synthetic.STAGES,
        "plan": synthetic.PLANS,
    }
    for column, names in generated.items():
        if column == "country":  # every ISO code is known; the synthetic company sells in a dozen countries
            assert set(names) < set(KNOWN_VALUES[column]) and len(KNOWN_VALUES[column]) == 249
        else:
            assert sorted(names) == sorted(KNOWN_VALUES[column]), column
    # every name the generator has effects for is generated (none dropped for not being known)
    for column, effects in {
        "industry": synthetic.INDUSTRY_EFFECTS,
        "employee_band": synthetic.EMPLOYEE_EFFECTS,
        "country": synthetic.COUNTRY_EFFECTS,
        "lead_source": synthetic.LEAD_SOURCE_EFFECTS,
    }.items():
        assert set(effects) == set(generated[column]), column
    assert {(s, d) for _, s, d, _ in synthetic.TITLES} <= {
        (s, d) for s in KNOWN_VALUES["seniority"] for d in KNOWN_VALUES["department"]
    }
    assert set(synthetic.EVENT_TYPES) >= DIRT_EVENT_TYPES, "the generator's unknown event types"
    assert not DIRT_EVENT_TYPES & set(KNOWN_VALUES["event_type"]), "dirt must stay unknown"
    assert [synthetic.EVENT_TYPES[c] for c in synthetic.BAD_EVENT_TYPE_CODES] == sorted(DIRT_EVENT_TYPES)


def test_the_models_own_words_name_known_values():
    """The rules baseline and the reasons phrase values by name: a renamed known value must not leave
    them reading a value that no longer exists."""
    assert set(SENIORITY) == set(KNOWN_VALUES["seniority"])
    for column, points in RULE_POINTS.items():
        assert set(points) <= set(KNOWN_VALUES[column]), column


def test_generated_data_uses_only_known_values(built_warehouse):
    """What the generator writes (literals in its code included) is known: only titles without a
    department word land in staging.unknown_values, and nothing is quarantined for an unknown stage, plan,
    billing interval or invoice status."""
    listed = query(built_warehouse, "SELECT DISTINCT column_name FROM staging.unknown_values")
    assert listed in ([], [("department",)])
    reasons = {r for (r,) in query(built_warehouse, "SELECT DISTINCT reason FROM staging.quarantine")}
    assert "unknown event_type" in reasons
    assert not {"unknown stage", "unknown plan", "unknown billing_interval", "unknown status"} & reasons
    for table, column, vocabulary in [
        ("stg_subscriptions", "billing_interval", "billing_interval"),
        ("stg_invoices", "status", "invoice_status"),
        ("stg_opportunity_stage_history", "stage", "opportunity_stage"),
    ]:
        values = {v for (v,) in query(built_warehouse, f"SELECT DISTINCT {column} FROM staging.{table}")}
        assert values == set(KNOWN_VALUES[vocabulary]), table


def test_an_unquoted_code_that_yaml_reads_as_a_boolean_is_refused(tmp_path):
    project = tmp_path / "dbt_project.yml"
    project.write_text("vars:\n  known_values:\n    country: [US, NO]\n")
    with pytest.raises(ValueError, match="quote"):
        load_known_values(project)


def test_a_known_value_staging_could_never_produce_fails_the_build(warehouse_copy):
    """'Biotechnology' in the industry list would never match (staging compares 'biotechnology'), and a
    synonym of a value that is not known would map rows to nothing: dbt refuses both."""
    known = {column: list(values) for column, values in KNOWN_VALUES.items()}
    known["industry"].append("Biotechnology")
    synonyms = {"plan": {"pro": "premium"}}
    result = run_dbt(
        warehouse_copy,
        "test",
        "--select",
        "test_name:known_values_are_clean",
        "--vars",
        json.dumps({"known_values": known, "value_synonyms": synonyms}),
        check=False,
    )
    assert result.returncode != 0
    assert "FAIL 2 known_values_are_clean" in result.stdout, result.stdout[-3000:]
    ok = run_dbt(warehouse_copy, "test", "--select", "test_name:known_values_are_clean", check=False)
    assert ok.returncode == 0, ok.stdout[-3000:]


def test_other_and_unknown_are_categories_to_the_model_and_words_to_a_rep():
    features = from_dbt_yaml(warehouse_lib.FEATURES_YAML)
    frame = pd.DataFrame({name: ["other", "unknown", None] for name in features.categorical})
    for name in features.numeric:
        frame[name] = 0.0
    matrix = to_matrix(frame, learn_categories(frame, features), features.names)
    cat = [j for j, name in enumerate(features.names) if name in features.categorical]
    assert not np.isnan(matrix[:2, cat]).any() and np.isnan(matrix[2, cat]).all()

    def phrase(factor: str, **values) -> str:
        return PHRASES[factor]({"utm_campaign": None, **values})

    assert phrase("company", employee_band="other", industry="other", revenue_band="unknown") == (
        "A company in another industry"
    )
    assert phrase("company", employee_band="unknown", industry="unknown", revenue_band="other") == (
        "A company of unknown industry"
    )
    assert phrase("company", employee_band="51-200", industry="software", revenue_band="<1M") == (
        "A 51-200 employee software company (revenue <1M)"
    )
    assert phrase("country", country="other") == "Based in another country"
    assert phrase("country", country="unknown") == "Country unknown"
    assert phrase("channel", lead_source="other") == "Came in via another channel"
    assert phrase("channel", lead_source="unknown") == "Unknown acquisition channel"
