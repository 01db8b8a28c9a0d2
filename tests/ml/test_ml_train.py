"""Tuning and training: same data + seed ⇒ same model; an interrupted study resumes."""

from __future__ import annotations

import numpy as np

from ml.bundle import ModelBundle
from ml.train import train_model


def test_same_seed_same_model_and_the_study_resumes(split, features, trained, train_config_factory, tmp_path):
    again = train_model(split, features, train_config_factory(tmp_path / "fresh"))
    assert again.tuning.best_params == trained.tuning.best_params
    first, second = trained.bundle.predict(split.test), again.bundle.predict(split.test)
    np.testing.assert_array_equal(first["score"].to_numpy(), second["score"].to_numpy())
    np.testing.assert_array_equal(first["tier"].to_numpy(), second["tier"].to_numpy())

    # Same study directory: the study is loaded, nothing is owed, the model is the same.
    resumed = train_model(split, features, train_config_factory(tmp_path / "fresh"))
    assert resumed.tuning.trials_this_run == 0 and resumed.tuning.n_trials == again.tuning.n_trials
    assert (tmp_path / "fresh" / "studies.db").exists()
    np.testing.assert_array_equal(resumed.bundle.predict(split.test)["score"].to_numpy(), first["score"].to_numpy())
    # A bigger budget on the same study runs only the missing trials.
    more = train_model(split, features, train_config_factory(tmp_path / "fresh", n_trials=4))
    assert more.tuning.trials_this_run == 1 and more.tuning.n_trials == 4


def test_scores_axes_and_tiers_are_well_formed(split, trained, tmp_path):
    predicted = trained.bundle.predict(split.test)
    assert predicted["score"].between(0, 100).all()
    assert predicted["fit_score"].between(0, 100).all() and predicted["engagement_score"].between(0, 100).all()
    assert set(predicted["tier"]) <= {f"{letter}{digit}" for letter in "ABCD" for digit in "1234"}
    a = predicted["fit_score"] >= 75
    assert (predicted.loc[a, "tier"].str[0] == "A").all() and (predicted.loc[~a, "tier"].str[0] != "A").all()
    # The bundle's files reload to the same predictions.
    reloaded = ModelBundle.load(trained.bundle.save(tmp_path / "bundle"))
    np.testing.assert_allclose(reloaded.predict(split.test)["score"], predicted["score"])
    assert reloaded.categories == trained.bundle.categories


def test_the_serving_budget_caps_every_model(split, features, train_config_factory, tmp_path):
    """Scoring cost is linear in trees: the caps hold whatever the search prefers."""
    config = train_config_factory(
        tmp_path, n_trials=2, max_rounds=12, axis_max_rounds=5, early_stopping_rounds=100, candidates=("lightgbm",)
    )
    bundle = train_model(split, features, config).bundle
    assert bundle.boosters["main"].num_trees() <= 12
    assert bundle.boosters["fit"].num_trees() <= 5 and bundle.boosters["engagement"].num_trees() <= 5
    assert float(bundle.params["learning_rate"]) >= 0.04  # the floor of the search space
    for booster in bundle.boosters.values():  # reasons cost grows with depth: no tree is deeper than 4
        assert all(tree_depth(tree["tree_structure"]) <= 4 for tree in booster.dump_model()["tree_info"])


def tree_depth(node: dict) -> int:
    if "leaf_index" in node:
        return 0
    return 1 + max(tree_depth(node["left_child"]), tree_depth(node["right_child"]))
