"""Model bench: training + tuning time for a budget, scoring throughput with and without reasons, memory.

    uv run python -m ml.bench [--warehouse PATH] [--accounts 10000] [--trials 30] [--timeout 600]

Input: the bench warehouse ``data/bench/warehouse.duckdb`` (``python -m ml.sources.bench --keep``)
when present, else ``--warehouse``. Training reads the labelled rows of a hash-sample of
``--accounts`` accounts (the whole bench history would not fit a laptop's memory in pandas); scoring
uses every consented lead of the latest ``as_of``. Figures are printed as JSON, never asserted.

Targets: plain scoring ≥ 100k leads/s on 2 cores; a nightly run with reasons (pred_contrib only for
leads whose signature changed since the previous as_of) ≤ 10× plain scoring of the same leads.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ml import warehouse
from ml.data import COLUMNS
from ml.features import CONSENT, LABEL, feature_hash
from ml.scoring import score_leads
from ml.split import SplitConfig, check_minimum_data, time_split
from ml.train import TrainConfig, train_model

BENCH_WAREHOUSE = Path("data") / "bench" / "warehouse.duckdb"
log = logging.getLogger("ml.bench")


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def load_sample(path: Path, accounts: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(labelled rows of sampled accounts, consented rows of the latest as_of, of the as_of before it)."""
    columns = ", ".join(COLUMNS)
    with warehouse.connect(read_only=True, path=path) as con:
        total = warehouse.scalar(con, "SELECT count(DISTINCT account_id) FROM main.lead_features")
        keep = max(1, round(10_000 * min(1.0, accounts / max(1, total))))
        labelled = con.execute(
            f"SELECT {columns} FROM main.lead_features WHERE {LABEL} IS NOT NULL AND hash(account_id) % 10000 < ?",
            [keep],
        ).df()
        days = [
            r[0]
            for r in con.execute("SELECT DISTINCT as_of FROM main.lead_features ORDER BY 1 DESC LIMIT 2").fetchall()
        ]
        today = con.execute(f"SELECT {columns} FROM main.lead_features WHERE as_of = ? AND {CONSENT}", [days[0]]).df()
        before = con.execute(f"SELECT {columns} FROM main.lead_features WHERE as_of = ? AND {CONSENT}", [days[-1]]).df()
    return labelled, today, before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, default=None)
    parser.add_argument("--accounts", type=int, default=10_000, help="accounts sampled for training")
    parser.add_argument("--trials", type=int, default=TrainConfig.n_trials)
    parser.add_argument("--timeout", type=float, default=TrainConfig.timeout_s)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reasons-sample", type=int, default=20_000, help="leads for the all-reasons timing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("optuna").setLevel(logging.WARNING)

    path = BENCH_WAREHOUSE if BENCH_WAREHOUSE.exists() and args.warehouse is None else args.warehouse
    if path is None or not path.exists():
        print(
            f"no warehouse: build {BENCH_WAREHOUSE} (python -m ml.sources.bench --keep) or pass --warehouse",
            file=sys.stderr,
        )
        return 2
    figures: dict[str, object] = {"warehouse": str(path)}
    started = time.perf_counter()
    labelled, today, before = load_sample(path, args.accounts)
    log.info("loaded %d labelled rows, %d leads to score", len(labelled), len(today))
    figures.update(
        load_seconds=round(time.perf_counter() - started, 1), labelled_rows=len(labelled), leads_today=len(today)
    )

    split_config = SplitConfig()
    split = time_split(labelled, split_config)
    check = check_minimum_data(split.train, split_config)
    figures["training_data"] = check.message
    with tempfile.TemporaryDirectory(prefix="leadscore-ml-bench-") as tmp:
        config = TrainConfig(
            n_trials=args.trials, timeout_s=args.timeout, num_threads=args.threads, study_dir=Path(tmp)
        )
        started = time.perf_counter()
        trained = train_model(split, config)
        figures.update(
            train_rows=len(split.train),
            training_seconds=round(time.perf_counter() - started, 1),
            tuning_seconds=round(trained.tuning.seconds, 1),
            trials=trained.tuning.n_trials,
            trials_pruned=trained.tuning.n_pruned,
        )
    bundle, version = trained.bundle, "bench/1"
    log.info("trained: %s", {k: figures[k] for k in ("train_rows", "training_seconds", "tuning_seconds")})

    # Plain scoring: predict only (score, both axes, tier) for every consented lead of the day.
    started = time.perf_counter()
    score_leads(today, bundle, version, with_reasons=False)
    plain_seconds = time.perf_counter() - started
    figures.update(plain_seconds=round(plain_seconds, 2), plain_leads_per_s=round(len(today) / plain_seconds))
    log.info("plain scoring: %s leads/s", figures["plain_leads_per_s"])

    # Reasons for every lead (pred_contrib on all), timed on a sample and reported per lead.
    sample = today.sample(min(args.reasons_sample, len(today)), random_state=0)
    started = time.perf_counter()
    score_leads(sample, bundle, version, with_reasons=True)
    all_seconds = time.perf_counter() - started
    figures["all_reasons_leads_per_s"] = round(len(sample) / all_seconds)
    log.info("reasons for every lead: %s leads/s", figures["all_reasons_leads_per_s"])

    # A nightly run: previous as_of already scored (its signature hashes stored), reasons only for changes.
    previous = pd.DataFrame(
        {
            "lead_id": before["lead_id"],
            "as_of": before["as_of"],
            "score": np.nan,
            "feature_hash": feature_hash(before, salt=version),
            "reasons": [["stored"]] * len(before),
        }
    )
    started = time.perf_counter()
    _, stats = score_leads(today, bundle, version, previous)
    nightly_seconds = time.perf_counter() - started
    figures.update(
        previous_as_of=str(pd.Timestamp(before["as_of"].iloc[0]).date()) if len(before) else None,
        nightly_seconds=round(nightly_seconds, 2),
        nightly_reasons_computed=stats.reasons_computed,
        nightly_reasons_reused=stats.reasons_reused,
        nightly_over_plain=round(nightly_seconds / plain_seconds, 2),
        nightly_target_met=nightly_seconds <= 10 * plain_seconds,
        plain_target_met=len(today) / plain_seconds >= 100_000,
        peak_memory_mb=round(peak_memory_mb()),
    )
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
