"""`make bench`, model quality section: the nightly model against its baselines and both ceilings.

    uv run python -m ml.quality [--accounts 2000 8000] [--trials N] [--timeout S] [--rebuild]

For each scale (default: the embedded default's 2,000 accounts and four times that), a synthetic
warehouse under ``data/bench/quality-<accounts>/`` is generated (fixed end date and seed, so figures
are comparable from one run to the next) and built with the real dbt project. It is reused while it
has every feature the dbt YAML declares; ``--rebuild`` forces a new build. Then the nightly's own
training runs (Optuna with the nightly budget, both candidates, learning curve, ablation) and the
test window's figures are printed:

* model vs logistic regression (targets: ROC AUC at least 0.02 above, PR AUC above) vs points rules;
* the clairvoyant oracle and the fair ceiling (ml/sources/synthetic.py), and the model's share of each
  (aim: 95% of the fair ceiling's ROC AUC);
* the learning curve and the ablation table.

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from ml import diagnostics, warehouse
from ml.data import column_types
from ml.features import FeatureMismatchError, FeatureSet, from_dbt_yaml
from ml.pipeline import TrainingData, evaluate
from ml.sources.synthetic import SyntheticConfig, load_synthetic
from ml.split import SplitConfig, time_split
from ml.train import NIGHTLY_TIMEOUT_S, NIGHTLY_TRIALS, TrainConfig, train_model

ROOT = Path("data") / "bench"
END_DATE = dt.date(2026, 6, 30)
log = logging.getLogger("ml.quality")


def warehouse_for(accounts: int, features: FeatureSet, rebuild: bool) -> Path:
    """A built warehouse of ``accounts`` synthetic accounts with every declared feature (built when needed)."""
    folder = ROOT / f"quality-{accounts}"
    raw, built = (
        folder / "generated.duckdb",
        folder / "warehouse.duckdb",
    )  # not raw.duckdb: DuckDB would name the catalog like the raw schema
    folder.mkdir(parents=True, exist_ok=True)
    if not raw.exists():
        log.info("generating %d accounts into %s", accounts, raw)
        partial = raw.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        with warehouse.connect(partial) as con:
            load_synthetic(con, SyntheticConfig(n_accounts=accounts, end_date=END_DATE))
        partial.rename(raw)
    if built.exists() and not rebuild:
        try:
            with warehouse.connect(built, read_only=True) as con:
                features.check_columns(column_types(con))
            return built
        except (FeatureMismatchError, duckdb.Error) as error:
            log.info("rebuilding %s: %s", built, error)
    partial = built.with_suffix(".partial")
    shutil.copy(raw, partial)
    started = time.perf_counter()
    result = warehouse.run_dbt(partial, "build", base_env=os.environ)
    if result.returncode != 0:
        raise SystemExit(f"dbt build of {partial} failed:\n{result.stdout[-4000:]}")
    log.info("built %s in %.0f s", built, time.perf_counter() - started)
    partial.rename(built)
    return built


def measure(path: Path, features: FeatureSet, config: TrainConfig) -> dict[str, object]:
    split_config = SplitConfig()
    with warehouse.connect(path, read_only=True) as con:
        data = TrainingData.read(con, features, split_config)
    split = time_split(data.labelled, split_config)
    started = time.perf_counter()
    trained = train_model(split, features, config)
    training_seconds = time.perf_counter() - started
    evaluation = evaluate(trained, split, data.oracle_truth, None, config)
    m = evaluation.metrics
    return {
        "train_rows": len(split.train),
        "train_conversions": int(split.train["converted_90d"].sum()),
        "test_rows": len(split.test),
        "test_conversions": int(split.test["converted_90d"].sum()),
        "features": len(features.names),
        "main_model": trained.bundle.main_kind,
        "candidates_valid_roc_auc": {k: round(v["valid_roc_auc"], 4) for k, v in trained.candidates.items()},
        "training_seconds": round(training_seconds, 1),
        "diagnostics_seconds": round(m.get("diagnostics_seconds", 0.0), 1),
        **{
            k: round(float(m[k]), 4)
            for k in (
                "roc_auc",
                "roc_auc_ci_low",
                "roc_auc_ci_high",
                "pr_auc",
                "baseline_logistic_roc_auc",
                "baseline_logistic_pr_auc",
                "baseline_rules_roc_auc",
                "oracle_roc_auc",
                "oracle_pr_auc",
                "fair_roc_auc",
                "fair_pr_auc",
                "share_of_oracle_roc_auc",
                "share_of_fair_roc_auc",
            )
            if k in m
        },
        "learning_curve": diagnostics.curve_markdown(evaluation.curve),
        "ablation": diagnostics.ablation_markdown(evaluation.ablation),
    }


def print_summary(accounts: int, f: dict[str, object]) -> None:
    roc, pr = f["roc_auc"], f["pr_auc"]
    lr_roc, lr_pr = f.get("baseline_logistic_roc_auc", float("nan")), f.get("baseline_logistic_pr_auc", float("nan"))
    print(f"\nmodel quality, {accounts:,} accounts ({f['test_rows']:,} test rows, {f['test_conversions']} conversions)")
    print(f"  main model                      {f['main_model']} (validation ROC AUC {f['candidates_valid_roc_auc']})")
    print(f"  ROC AUC                         {roc:.4f} [{f['roc_auc_ci_low']:.4f}, {f['roc_auc_ci_high']:.4f}]")
    print(f"  vs logistic regression          {roc - lr_roc:+.4f} ROC AUC ({lr_roc:.4f})   target >= +0.02")
    print(f"  PR AUC                          {pr:.4f} vs logistic {lr_pr:.4f} ({pr - lr_pr:+.4f})   target > 0")
    print(f"  points rules ROC AUC            {f.get('baseline_rules_roc_auc', float('nan')):.4f}")
    if "fair_roc_auc" in f:
        print(
            f"  fair ceiling ROC AUC            {f['fair_roc_auc']:.4f}   model's share "
            f"{f['share_of_fair_roc_auc']:.1%}   aim >= 95%"
        )
    if "oracle_roc_auc" in f:
        print(
            f"  oracle (clairvoyant) ROC AUC    {f['oracle_roc_auc']:.4f}   "
            f"model's share {f['share_of_oracle_roc_auc']:.1%}"
        )
    print(
        f"  training + tuning               {f['training_seconds']:.1f} s, diagnostics {f['diagnostics_seconds']:.1f} s"
    )
    print("\n  learning curve (test window)\n")
    print("\n".join("    " + line for line in str(f["learning_curve"]).splitlines()))
    print("\n  ablation (test window, LightGBM refitted without each group / reason)\n")
    print("\n".join("    " + line for line in str(f["ablation"]).splitlines()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[2_000, 8_000])
    parser.add_argument("--trials", type=int, default=NIGHTLY_TRIALS)
    parser.add_argument("--timeout", type=float, default=NIGHTLY_TIMEOUT_S)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the warehouses with dbt")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("optuna").setLevel(logging.WARNING)
    features = from_dbt_yaml(warehouse.FEATURES_YAML)
    figures = {}
    for accounts in args.accounts:
        path = warehouse_for(accounts, features, args.rebuild)
        with tempfile.TemporaryDirectory(prefix="leadscore-quality-") as tmp:
            config = TrainConfig(n_trials=args.trials, timeout_s=args.timeout, study_dir=Path(tmp))
            figures[accounts] = measure(path, features, config)
        print_summary(accounts, figures[accounts])
    print(
        json.dumps(
            {
                str(k): {n: v for n, v in f.items() if n not in ("learning_curve", "ablation")}
                for k, f in figures.items()
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
