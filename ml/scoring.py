"""Scoring one ``as_of`` with the champion: scores, tier, reasons, 7-day change, drift, and timings.

Reasons come from ``pred_contrib``, which costs hundreds of plain predictions, so they are computed
only for leads whose *coarse* feature signature (``ml.features.feature_hash``: categories, counts in
octave buckets, lead age in months, salted with the model version) changed since their last
scoring; every other lead reuses the reasons stored with its previous score. Exact values drift daily
(decay, age), the words a rep reads do not. The split and the time spent are reported in
:class:`ScoringStats`.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from ml import data as data_lib
from ml import warehouse
from ml.bundle import ModelBundle
from ml.drift import Drift, score_drift
from ml.features import CONSENT, feature_hash
from ml.reasons import explain_formatted
from ml.registry import CHAMPION, LoadedModel

OUTPUT_COLUMNS = (
    "lead_id",
    "account_id",
    "as_of",
    "score",
    "fit_score",
    "engagement_score",
    "tier",
    "reasons",
    "score_change_7d",
    "model_version",
    "feature_hash",
)


@dataclass
class ScoringStats:
    leads: int = 0
    reasons_computed: int = 0
    reasons_reused: int = 0
    predict_seconds: float = 0.0
    reasons_seconds: float = 0.0
    drift: Drift | None = None
    model_version: str | None = None
    notes: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, object]:
        """Flat figures for an orchestrator's materialization metadata."""
        out: dict[str, object] = {
            "leads_scored": self.leads,
            "reasons_computed": self.reasons_computed,
            "reasons_reused": self.reasons_reused,
            "predict_seconds": round(self.predict_seconds, 3),
            "reasons_seconds": round(self.reasons_seconds, 3),
            "model_version": self.model_version or "",
        }
        if self.drift is not None:
            out["score_psi"] = round(self.drift.psi, 4)
            out["score_drift_warning"] = self.drift.warn
        return out


def _latest_previous(
    previous: pd.DataFrame | None, lead_ids: pd.Series, as_of: pd.Series, before_days: int
) -> pd.DataFrame:
    """For each (lead, as_of), the most recent previous row at least ``before_days`` older (or none)."""
    if previous is None or previous.empty:
        return pd.DataFrame(index=lead_ids.index)
    prev = previous.copy()
    prev["as_of"] = pd.to_datetime(prev["as_of"])
    prev = prev.sort_values(["as_of", "lead_id"], kind="stable")
    left = pd.DataFrame(
        {"lead_id": lead_ids.to_numpy(), "cutoff": pd.to_datetime(as_of).to_numpy() - np.timedelta64(before_days, "D")}
    )
    left["_row"] = np.arange(len(left))
    left = left.sort_values("cutoff", kind="stable")
    merged = pd.merge_asof(
        left,
        prev.rename(columns={"as_of": "prev_as_of"}),
        left_on="cutoff",
        right_on="prev_as_of",
        by="lead_id",
        direction="backward",
        allow_exact_matches=before_days > 0,
    )
    merged = merged.sort_values("_row").set_index(lead_ids.index)
    return merged


def score_leads(
    rows: pd.DataFrame,
    bundle: ModelBundle,
    model_version: str,
    previous: pd.DataFrame | None = None,
    with_reasons: bool = True,
) -> tuple[pd.DataFrame, ScoringStats]:
    """Score ``lead_features`` rows (only those with marketing consent) with ``bundle``.

    ``previous``: earlier ``lead_scores`` rows (``lead_id``, ``as_of``, ``score``, ``feature_hash``,
    ``reasons``), e.g. from :func:`ml.data.load_previous_scores`; used for ``score_change_7d`` (against
    the latest score at least 7 days older) and to reuse reasons of leads whose signature is unchanged.
    """
    stats = ScoringStats(model_version=model_version)
    if CONSENT in rows:
        rows = rows[rows[CONSENT].fillna(False).astype(bool)]
    rows = rows.reset_index(drop=True)
    stats.leads = len(rows)
    started = time.perf_counter()
    predicted = bundle.predict(rows)
    stats.predict_seconds = time.perf_counter() - started

    out = pd.DataFrame(
        {"lead_id": rows["lead_id"], "account_id": rows["account_id"], "as_of": pd.to_datetime(rows["as_of"])}
    )
    out = pd.concat([out, predicted], axis=1)
    out["model_version"] = model_version
    out["feature_hash"] = feature_hash(rows, bundle.features, salt=model_version)

    week_ago = _latest_previous(previous, rows["lead_id"], rows["as_of"], before_days=7)
    out["score_change_7d"] = out["score"] - week_ago["score"] if "score" in week_ago else np.nan

    out["reasons"] = pd.Series([None] * len(out), dtype=object)
    if with_reasons and len(rows):
        last = _latest_previous(previous, rows["lead_id"], rows["as_of"], before_days=0)
        reuse = np.zeros(len(rows), dtype=bool)
        if "feature_hash" in last and "reasons" in last:
            reuse = (last["feature_hash"].to_numpy() == out["feature_hash"].to_numpy()) & last[
                "reasons"
            ].notna().to_numpy()
            out.loc[reuse, "reasons"] = pd.Series(
                [list(r) for r in last.loc[reuse, "reasons"]], index=out.index[reuse], dtype=object
            )
        todo = np.flatnonzero(~reuse)
        started = time.perf_counter()
        if len(todo):
            subset = rows.iloc[todo]
            explained = explain_formatted(subset, bundle.contributions(subset), bundle.features)
            out.loc[out.index[todo], "reasons"] = pd.Series(explained, index=out.index[todo], dtype=object)
        stats.reasons_seconds = time.perf_counter() - started
        stats.reasons_computed, stats.reasons_reused = len(todo), int(reuse.sum())
    if bundle.score_reference and len(out):
        stats.drift = score_drift(bundle.score_reference, out["score"].to_numpy())
    return out[list(OUTPUT_COLUMNS)], stats


@dataclass
class ScoringResult:
    status: str  # "scored" or "skipped: ..."
    scores: pd.DataFrame
    stats: ScoringStats
    as_of: dt.date | None


def score_as_of(
    con: duckdb.DuckDBPyConnection, model: LoadedModel | None, as_of: dt.date | None = None, alias: str = CHAMPION
) -> ScoringResult:
    """Score ``as_of`` (default: the latest in ``lead_features``) with ``model`` (the caller loads it once,
    e.g. ``ml.registry.load_alias(settings)`` for ``models:/lead_scoring@champion``; None: none has
    ``alias`` yet), reading rows and previous scores through ``con`` (read-only is enough). Does not
    write: see :func:`write_scores`, which wants a write connection of its own."""
    as_of = as_of or data_lib.latest_as_of(con)
    empty = pd.DataFrame(columns=list(OUTPUT_COLUMNS))
    if as_of is None:
        return ScoringResult("skipped: lead_features is empty", empty, ScoringStats(), None)
    if model is None:
        return ScoringResult(f"skipped: no model has alias {alias!r} yet", empty, ScoringStats(), as_of)
    rows = data_lib.load_scoring_rows(con, as_of, model.bundle.features)
    previous = data_lib.load_previous_scores(con, as_of)
    scores, stats = score_leads(rows, model.bundle, model.label, previous)
    return ScoringResult("scored", scores, stats, as_of)


LEAD_SCORES_DDL = """
CREATE TABLE IF NOT EXISTS main.lead_scores (
    lead_id VARCHAR NOT NULL, account_id VARCHAR, as_of DATE NOT NULL, score DOUBLE, fit_score DOUBLE,
    engagement_score DOUBLE, tier VARCHAR, reasons VARCHAR[], score_change_7d DOUBLE, model_version VARCHAR,
    feature_hash VARCHAR, scored_at TIMESTAMP
)
"""


def write_scores(con: duckdb.DuckDBPyConnection, scores: pd.DataFrame, as_of: dt.date) -> int:
    """Replace the ``as_of`` day of ``main.lead_scores`` with ``scores`` in one transaction (idempotent)."""
    frame = scores[list(OUTPUT_COLUMNS)].copy()
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    con.execute("BEGIN")
    try:
        con.execute(LEAD_SCORES_DDL)
        con.execute("DELETE FROM main.lead_scores WHERE as_of = ?", [as_of])
        # A lead deleted or merged away in the CRM (gone from the current leads) leaves the score history too.
        if warehouse.table_exists(con, "main", "lead_crm_ids"):
            con.execute(
                "DELETE FROM main.lead_scores AS s WHERE NOT EXISTS "
                "(SELECT 1 FROM main.lead_crm_ids AS c WHERE c.lead_id = s.lead_id)"
            )
        con.register("_new_scores", frame)
        con.execute(
            f"INSERT INTO main.lead_scores SELECT {', '.join(OUTPUT_COLUMNS)}, now()::TIMESTAMP FROM _new_scores"
        )
        con.unregister("_new_scores")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return int(warehouse.scalar(con, "SELECT count(*) FROM main.lead_scores WHERE as_of = ?", [as_of]))
