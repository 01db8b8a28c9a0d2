"""Model bench: training + tuning time for the nightly budget, scoring throughput with and without
reasons, a realistic nightly run, peak memory.

    uv run python -m ml.bench [--warehouse PATH] [--accounts N] [--trials N] [--timeout S]

Input: the bench warehouse ``data/bench/warehouse/warehouse.duckdb`` (left by ``python -m ml.sources.bench``)
when present, else ``--warehouse``.

* **Training** is the nightly's: the labelled rows of a hash-sample of ``SplitConfig.max_accounts``
  accounts (``--accounts``), tuned with the nightly budget (``LEADSCORE_OPTUNA_TRIALS`` /
  ``_TIMEOUT_S``) unless ``--trials`` / ``--timeout`` say otherwise.
* **Plain scoring** predicts score, both axes, tier and signature hash for every consented lead of
  the latest ``as_of`` (the median of three runs).
* **A nightly run** scores the same leads the way the nightly job does: yesterday's scores (with
  their signature hashes) are in place, and reasons (``pred_contrib``) are computed only for leads
  whose signature changed since. The weekly training grid has no "yesterday", so the bench builds
  that one as-of day with dbt first (it writes the bench warehouse, ~30 s, once).

Figures are printed, never asserted. Targets: plain scoring >= 100k leads/s on 2 cores; the nightly
run with reasons <= 10x the plain scoring of the same leads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ml import warehouse
from ml.bundle import ModelBundle
from ml.data import latest_as_of, load_labelled, load_scoring_rows
from ml.features import FeatureSet, from_dbt_yaml
from ml.scoring import score_leads
from ml.split import SplitConfig, check_minimum_data, time_split
from ml.train import NIGHTLY_TIMEOUT_S, NIGHTLY_TRIALS, TrainConfig, train_model

BENCH_WAREHOUSE = Path("data") / "bench" / "warehouse" / "warehouse.duckdb"
VERSION = "bench/1"
# The nightly budget's variables, as the Dagster resource `training` reads them (dagster_project/resources.py).
TRIALS_ENV, TIMEOUT_ENV = "LEADSCORE_OPTUNA_TRIALS", "LEADSCORE_OPTUNA_TIMEOUT_S"
log = logging.getLogger("ml.bench")


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def has_day(path: Path, day: dt.date) -> bool:
    """Whether ``lead_features`` holds any row of ``day``."""
    with warehouse.connect(path, read_only=True) as con:
        return bool(warehouse.scalar(con, "SELECT count(*) FROM main.lead_features WHERE as_of = ?", [day]))


def build_day(path: Path, day: dt.date) -> float:
    """Build one as-of day of the per-day models with dbt; seconds taken."""
    started = time.perf_counter()
    result = warehouse.run_dbt(path, *warehouse.build_days_args(day, day), base_env=os.environ)
    if result.returncode != 0:
        raise SystemExit(f"dbt could not build as_of {day}:\n{result.stdout[-4000:]}")
    return time.perf_counter() - started


def load_rows(path: Path, features: FeatureSet, max_accounts: int | None, today: dt.date) -> tuple[pd.DataFrame, ...]:
    """(labelled rows as the nightly training reads them, consented rows of ``today``, of the day before)."""
    with warehouse.connect(path, read_only=True) as con:
        labelled = load_labelled(con, features, max_accounts)
        yesterday = today - dt.timedelta(days=1)
        return labelled, load_scoring_rows(con, today, features), load_scoring_rows(con, yesterday, features)


def timed_plain(rows: pd.DataFrame, bundle: ModelBundle, runs: int = 3) -> float:
    """Median seconds of plain scoring (no reasons) over ``runs`` runs: one run is noisy on 2 cores."""
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        score_leads(rows, bundle, VERSION, with_reasons=False)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, default=None)
    parser.add_argument(
        "--accounts", type=int, default=SplitConfig.max_accounts, help="training reads a sample of this many accounts"
    )
    parser.add_argument("--trials", type=int, default=None, help="default: the nightly budget")
    parser.add_argument("--timeout", type=float, default=None, help="seconds; default: the nightly budget")
    parser.add_argument("--reasons-sample", type=int, default=20_000, help="leads for the all-reasons timing")
    return parser.parse_args(argv)


def train_config(args: argparse.Namespace, environ: Mapping[str, str], study_dir: Path) -> TrainConfig:
    """The nightly budget (``LEADSCORE_OPTUNA_TRIALS`` / ``_TIMEOUT_S``, as the nightly run reads them), so
    the bench's training time is the nightly's, unless ``--trials`` / ``--timeout`` say otherwise."""
    trials = args.trials if args.trials is not None else int(environ.get(TRIALS_ENV, NIGHTLY_TRIALS))
    timeout = args.timeout if args.timeout is not None else float(environ.get(TIMEOUT_ENV, NIGHTLY_TIMEOUT_S))
    return TrainConfig(n_trials=trials, timeout_s=timeout, study_dir=study_dir)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("optuna").setLevel(logging.WARNING)

    path = BENCH_WAREHOUSE if BENCH_WAREHOUSE.exists() and args.warehouse is None else args.warehouse
    if path is None or not path.exists():
        hint = f"no warehouse: build {BENCH_WAREHOUSE} (python -m ml.sources.bench) or pass --warehouse"
        print(hint, file=sys.stderr)
        return 2
    path = path.resolve()
    figures: dict[str, object] = {"warehouse": str(path)}
    with warehouse.connect(path, read_only=True) as con:
        today = latest_as_of(con)
    if today is None:
        print(f"{path} has no lead_features rows: build the warehouse first", file=sys.stderr)
        return 2
    if not has_day(path, today - dt.timedelta(days=1)):
        log.info("building as_of %s with dbt, the day before the latest", today - dt.timedelta(days=1))
        figures["yesterday_build_seconds"] = round(build_day(path, today - dt.timedelta(days=1)), 1)

    features = from_dbt_yaml(warehouse.FEATURES_YAML)
    started = time.perf_counter()
    labelled, rows_today, rows_yesterday = load_rows(path, features, args.accounts, today)
    figures.update(
        load_seconds=round(time.perf_counter() - started, 1), labelled_rows=len(labelled), leads_today=len(rows_today)
    )
    log.info("loaded %d labelled rows, %d leads to score on %s", len(labelled), len(rows_today), today)

    split_config = SplitConfig()
    split = time_split(labelled, split_config)
    figures["training_data"] = check_minimum_data(split.train, split_config).message
    with tempfile.TemporaryDirectory(prefix="leadscore-ml-bench-") as tmp:
        config = train_config(args, os.environ, Path(tmp))
        started = time.perf_counter()
        trained = train_model(split, features, config)
        figures.update(
            train_rows=len(split.train),
            training_seconds=round(time.perf_counter() - started, 1),
            tuning_seconds=round(trained.tuning.seconds, 1),
            trials=trained.tuning.n_trials,
            trials_pruned=trained.tuning.n_pruned,
            trees={name: booster.num_trees() for name, booster in trained.bundle.boosters.items()},
        )
    bundle = trained.bundle
    log.info("trained in %s s with %s trials", figures["training_seconds"], figures["trials"])

    plain_seconds = timed_plain(rows_today, bundle)
    figures.update(plain_seconds=round(plain_seconds, 2), plain_leads_per_s=round(len(rows_today) / plain_seconds))
    log.info("plain scoring: %s leads/s", figures["plain_leads_per_s"])

    # Reasons for every lead (pred_contrib + words on all of them), on a sample, per lead.
    sample = rows_today.sample(min(args.reasons_sample, len(rows_today)), random_state=0)
    started = time.perf_counter()
    score_leads(sample, bundle, VERSION, with_reasons=True)
    figures["all_reasons_leads_per_s"] = round(len(sample) / (time.perf_counter() - started))

    # The nightly run: yesterday was scored (its hashes and reasons stored); today computes reasons
    # only for the leads whose signature changed since.
    yesterday, _ = score_leads(rows_yesterday, bundle, VERSION, with_reasons=False)
    yesterday["reasons"] = [["stored"]] * len(yesterday)
    started = time.perf_counter()
    _, stats = score_leads(rows_today, bundle, VERSION, yesterday)
    nightly_seconds = time.perf_counter() - started
    figures.update(
        previous_as_of=str(today - dt.timedelta(days=1)),
        nightly_seconds=round(nightly_seconds, 2),
        nightly_reasons_computed=stats.reasons_computed,
        nightly_reasons_reused=stats.reasons_reused,
        nightly_changed_share=round(stats.reasons_computed / max(1, stats.leads), 3),
        nightly_reasons_seconds=round(stats.reasons_seconds, 2),
        nightly_over_plain=round(nightly_seconds / plain_seconds, 2),
        peak_memory_mb=round(peak_memory_mb()),
    )
    print(json.dumps(figures, indent=2))
    print("\nsummary")
    print(f"  training + tuning ({figures['trials']} trials)  {figures['training_seconds']:8.1f} s")
    print(f"  plain scoring                  {figures['plain_leads_per_s']:8,} leads/s   target >= 100,000")
    print(f"  reasons for every lead         {figures['all_reasons_leads_per_s']:8,} leads/s")
    print(
        f"  nightly run / plain scoring    {figures['nightly_over_plain']:8.2f}x         target <= 10x "
        f"({figures['nightly_changed_share']:.1%} of leads changed since yesterday)"
    )
    print(f"  peak memory                    {figures['peak_memory_mb']:8,} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
