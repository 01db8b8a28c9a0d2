"""Features are declared in the dbt YAML; models describe and check their own inputs."""

from __future__ import annotations

import dataclasses
import json
import shutil

import duckdb
import numpy as np
import pytest
import yaml

from ml import warehouse
from ml.data import load_scoring_rows
from ml.features import (
    FeatureDeclarationError,
    FeatureMismatchError,
    FeatureSet,
    from_columns,
    from_dbt_yaml,
    from_manifest,
)
from ml.reasons import explain_formatted, generic_phrase, label
from ml.split import time_split
from ml.train import TrainConfig, default_study_name


def column(name: str, description: str = "", **feature) -> dict:
    return {"name": name, "description": description, "config": {"meta": {"feature": feature}} if feature else {}}


def test_a_declaration_is_read_in_order_with_its_defaults():
    features = from_columns(
        [
            column("lead_id", "Lead id."),
            column("industry", "Fit - account industry.", group="fit", kind="categorical", reason="company"),
            column("visits_7d", "Engagement - visits, last 7 days.", group="engagement"),
            {"name": "legacy", "meta": {"feature": {"group": "lifecycle"}}},  # meta outside config works too
        ],
        "test.yml",
    )
    assert features.names == ("industry", "visits_7d", "legacy")
    assert features.categorical == ("industry",) and features.numeric == ("visits_7d", "legacy")
    assert features.by_name["visits_7d"].factor == "visits_7d"  # no reason declared: its own
    assert features.columns("fit") == ("industry",) and features.columns("engagement") == ("visits_7d",)
    assert features.factors == ("company", "visits_7d", "legacy")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (column("x", group="behaviour"), "group must be one of fit, engagement, lifecycle"),
        (column("x", group="fit", kind="text"), "kind must be one of numeric, categorical"),
        (column("converted_90d", group="fit"), "never a feature"),
        (column("x", group="fit", phrase="visits"), "phrase must contain {value}"),
        (column("x", group="fit", reuse="weekly"), "reuse must be one of"),
        (column("x", group="fit", colour="red"), "unknown key(s) colour"),
    ],
)
def test_a_bad_declaration_names_the_file_and_the_column(entry, message):
    with pytest.raises(FeatureDeclarationError, match=r"lead_features\.yml: column") as error:
        from_columns([entry], "dbt/models/marts/lead_features.yml")
    assert message in str(error.value)


def test_no_declared_feature_is_an_error():
    with pytest.raises(FeatureDeclarationError, match="no column of lead_features declares"):
        from_columns([column("lead_id")], "x.yml")


def test_the_yaml_and_the_manifest_declare_the_same_features(features, built_warehouse):
    """The nightly reads the manifest of its dbt run; tools read the YAML: the same features either way."""
    manifest_path = built_warehouse.parent / "dbt-dbt" / "target" / "manifest.json"  # the fixture's dbt build
    assert from_manifest(json.loads(manifest_path.read_text())) == features
    assert len(features.names) >= 44 and "pricing_views_7d" in features.names


def test_the_digest_follows_what_a_model_sees():
    features = from_dbt_yaml(warehouse.FEATURES_YAML)
    assert features.digest() == from_dbt_yaml(warehouse.FEATURES_YAML).digest()
    assert features.without(["pricing_views_7d"]).digest() != features.digest()
    first = features.features[0]
    retyped = FeatureSet((dataclasses.replace(first, categorical=not first.categorical), *features.features[1:]))
    assert retyped.digest() != features.digest()
    reworded = FeatureSet((dataclasses.replace(first, description="new words"), *features.features[1:]))
    assert reworded.digest() == features.digest()
    assert FeatureSet.from_records(features.to_records()) == features


def test_the_study_key_covers_features_and_every_fixed_setting(split, features, tmp_path):
    config = TrainConfig(study_dir=tmp_path)
    name = default_study_name(split, config, features)
    assert default_study_name(split, config, features.without(["country"])) != name
    assert default_study_name(split, dataclasses.replace(config, max_depth=3), features) != name
    assert default_study_name(split, dataclasses.replace(config, max_rounds=100), features) != name
    # The budget and the post-tuning diagnostics do not change what a trial scores: the study resumes.
    assert default_study_name(split, dataclasses.replace(config, n_trials=50, timeout_s=5), features) == name
    assert default_study_name(split, dataclasses.replace(config, ablation=False), features) == name


def test_the_bundle_checks_its_inputs_and_names_what_is_wrong(split, trained):
    rows = split.test.head(20)
    with pytest.raises(FeatureMismatchError) as error:
        trained.bundle.predict(rows.drop(columns=["pricing_views_7d", "industry"]))
    assert "missing: industry, pricing_views_7d" in str(error.value)
    retyped = rows.assign(page_views_30d=rows["page_views_30d"].astype(str), country=1.0)
    with pytest.raises(FeatureMismatchError) as error:
        trained.bundle.predict(retyped)
    message = str(error.value)
    assert "retyped: " in message and "page_views_30d (text; the model expects numeric)" in message
    assert "country (number; the model expects categorical)" in message
    # A column entirely null is not retyped: there is nothing to judge by.
    assert trained.bundle.predict(rows.assign(country=None, page_views_30d=None))["score"].notna().all()


def test_scoring_a_warehouse_that_lost_a_column_names_it(built_warehouse, trained, tmp_path):
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(built_warehouse, path)
    with duckdb.connect(str(path)) as con:
        con.execute("ALTER TABLE main.lead_features DROP COLUMN demo_requests_90d")
        con.execute("ALTER TABLE main.lead_features ALTER account_arr TYPE VARCHAR")
        day = con.execute("SELECT max(as_of) FROM main.lead_features").fetchone()[0]
    with warehouse.connect(path, read_only=True) as con, pytest.raises(FeatureMismatchError) as error:
        load_scoring_rows(con, day, trained.bundle.features)
    message = str(error.value)
    assert message.startswith("main.lead_features does not have the columns the model was trained on")
    assert "missing: demo_requests_90d" in message and "account_arr (VARCHAR; the model expects numeric)" in message


def test_a_saved_bundle_remembers_its_features(trained, tmp_path):
    from ml.bundle import ModelBundle

    saved = json.loads((trained.bundle.save(tmp_path / "bundle") / "bundle.json").read_text())
    assert [f["name"] for f in saved["features"]] == list(trained.bundle.features.names)
    assert saved["features_digest"] == trained.bundle.features.digest()
    assert ModelBundle.load(tmp_path / "bundle").features == trained.bundle.features


def test_a_reason_without_a_built_in_phrasing_is_phrased_from_its_declaration(split, trained):
    features = trained.bundle.features
    visits = features.by_name["page_views_7d"]
    described = dataclasses.replace(visits, factor="analyst_signal", phrase=None)
    assert label(described) == "Page views, last 7 days"
    assert generic_phrase(described, 3.0) == "Page views, last 7 days: 3"
    assert generic_phrase(described, 2.5) == "Page views, last 7 days: 2.5"
    assert generic_phrase(described, None) == "Page views, last 7 days: not known"
    templated = dataclasses.replace(described, phrase="{value} visits this week")
    assert generic_phrase(templated, 4) == "4 visits this week"
    # A whole model whose every reason is a declared one: the words come from the declarations.
    renamed = FeatureSet(
        tuple(dataclasses.replace(f, factor=f"custom_{f.factor}", phrase=None) for f in features.features)
    )
    bundle = dataclasses.replace(trained.bundle, features=renamed)
    rows = split.test.head(50)
    texts = [t for reasons in explain_formatted(rows, bundle.contributions(rows), renamed) for t in reasons]
    labels = tuple(label(f) for f in renamed.features)
    assert texts and all(t[2:].startswith(labels) and ": " in t for t in texts)


def test_removing_a_declared_feature_removes_it_from_the_model(split, features, train_config_factory, tmp_path):
    from ml.train import train_model

    fewer = features.without(["pricing_views_7d", "pricing_views_30d", "pricing_views_decayed"])
    trained = train_model(split, fewer, train_config_factory(tmp_path, n_trials=1, candidates=("lightgbm",)))
    assert "pricing" not in trained.bundle.features.factors
    assert not {"pricing_views_7d", "pricing_views_30d"} & set(trained.bundle.boosters["main"].feature_name())
    assert set(trained.importance) == set(fewer.names)
    # The rows still have the columns; the model ignores them and scores without them.
    assert np.isfinite(trained.bundle.predict(split.test.drop(columns=["pricing_views_7d"]))["score"]).all()


def test_training_reads_every_column_of_lead_features(labelled, features):
    """Training reads every column of lead_features (a champion trained on an earlier declaration may need
    one the current declaration dropped), and the split keeps them."""
    assert set(features.names) <= set(labelled.columns)
    assert "built_by_invocation" not in labelled.columns


@pytest.mark.slow
def test_an_analyst_adds_a_column_in_dbt_and_the_next_model_uses_it(
    built_warehouse, small_minimums, train_config_factory, tmp_path
):
    """The analyst's whole path: a new column in lead_features.sql, declared in the YAML; dbt builds it;
    the model trained next reads it (from the manifest of that build), weighs it and phrases it."""
    from ml.pipeline import TrainingData
    from ml.train import train_model
    from tests.conftest import run_dbt

    project = tmp_path / "dbt"
    shutil.copytree(warehouse.DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    model = project / "models" / "marts" / "lead_features.sql"
    sql = model.read_text()
    anchor = "    -- which dbt run built the row"
    assert anchor in sql
    model.write_text(
        sql.replace(anchor, "    coalesce(a.pricing_views_30d, 0) * 2 + 1 as pricing_interest,\n" + anchor, 1)
    )
    # Declared in the YAML; and the pricing features it supersedes are no longer features.
    yml = project / "models" / "marts" / "lead_features.yml"
    document = yaml.safe_load(yml.read_text())
    columns = document["models"][0]["columns"]
    for entry in columns:
        if entry["name"].startswith("pricing_views_"):
            entry.pop("config")
    columns.append(
        {
            "name": "pricing_interest",
            "description": "Engagement - pricing interest points (the analyst's own signal).",
            "config": {"meta": {"feature": {"group": "engagement", "kind": "numeric", "reason": "pricing_interest"}}},
        }
    )
    yml.write_text(yaml.safe_dump(document, sort_keys=False))

    path = tmp_path / "warehouse.duckdb"
    shutil.copy(built_warehouse, path)
    run_dbt(path, "build", "--select", "lead_features", "--full-refresh", project_dir=project)
    manifest = json.loads((tmp_path / "dbt-dbt" / "target" / "manifest.json").read_text())
    declared = from_manifest(manifest)
    assert declared.names[-1] == "pricing_interest" and declared.by_name["pricing_interest"].group == "engagement"
    assert not any(name.startswith("pricing_views_") for name in declared.names)

    with warehouse.connect(path, read_only=True) as con:
        data = TrainingData.read(con, declared)
    trained = train_model(
        time_split(data.labelled, small_minimums), declared, train_config_factory(tmp_path / "optuna", n_trials=1)
    )
    assert "pricing_interest" in trained.bundle.features.names
    assert "pricing_interest" in trained.importance
    assert "pricing_interest" in trained.bundle.features.columns("engagement")
    assert "pricing" not in trained.bundle.features.factors
    if trained.bundle.linear is None:
        assert "pricing_interest" in trained.bundle.boosters["main"].feature_name()
        assert "pricing_views_7d" not in trained.bundle.boosters["main"].feature_name()
    # Its reason has no built-in phrasing: it is phrased from the description.
    rows = data.labelled[data.labelled["pricing_interest"] > 1].head(200)
    texts = [t for r in explain_formatted(rows, trained.bundle.contributions(rows), declared) for t in r]
    assert any("Pricing interest points: " in t for t in texts)


def test_a_bundle_saved_before_feature_declarations_still_loads_and_scores(split, trained, tmp_path):
    """A champion registered before models described their features must keep scoring after the upgrade:
    its boosters know their columns, the category lists which are categorical, the axes the groups."""
    from ml.bundle import ModelBundle

    if trained.bundle.linear is not None:
        pytest.skip("legacy bundles were LightGBM only")
    directory = trained.bundle.save(tmp_path / "bundle")
    meta = json.loads((directory / "bundle.json").read_text())
    for key in ("features", "features_digest", "main_kind"):
        del meta[key]
    (directory / "bundle.json").write_text(json.dumps(meta))
    legacy = ModelBundle.load(directory)
    assert legacy.features.names == trained.bundle.features.names
    assert legacy.features.categorical == trained.bundle.features.categorical
    assert legacy.features.columns("fit") == trained.bundle.features.columns("fit")
    np.testing.assert_allclose(legacy.predict(split.test)["score"], trained.bundle.predict(split.test)["score"])
