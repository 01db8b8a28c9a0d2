"""Per-lead reasons in words a rep understands, from LightGBM's own contributions (``pred_contrib``).

A lead's log-odds is ``bias + Σ contribution(feature)``. Features that say the same thing to a rep
(the three pricing-page features, the company's industry/size/revenue/age, ...) are summed into one
*factor* (the ``reason`` a feature declares in the dbt YAML, ``Feature.factor``), so three reasons
never repeat "pricing". The top three factors pushing the score up and the top three pushing it down
are phrased from the lead's actual values ("3 pricing-page visits in the last 7 days", "VP in
engineering").

The reasons leadscore ships with have hand-written phrasings (:data:`PHRASES`). A reason an analyst
declares without one is phrased generically, feature by feature: from the feature's declared
``phrase`` template (``"{value} return visits in the last 30 days"``) or else from the first clause
of its description ("Distinct active days, last 7 days: 3"). A built-in phrasing whose inputs are not
all among the rows' columns (an analyst removed one) falls back to the generic one too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.features import Feature, FeatureSet

TOP = 3


@dataclass(frozen=True)
class Reason:
    factor: str
    impact: float  # summed log-odds contribution of the factor's features
    text: str

    def formatted(self) -> str:
        return format_reason(self.impact, self.text)


def format_reason(impact: float, text: str) -> str:
    """How a reason reads in the CRM: ``+ text`` when it raises the score, ``- text`` when it lowers it."""
    return f"{'+' if impact > 0 else '-'} {text}"


def factor_matrix(features: FeatureSet) -> np.ndarray:
    """(features × factors) 0/1 matrix: contributions @ matrix = contribution per factor."""
    matrix = np.zeros((len(features.names), len(features.factors)))
    for j, feature in enumerate(features.features):
        matrix[j, features.factors.index(feature.factor)] = 1.0
    return matrix


def factor_contributions(contrib: np.ndarray, features: FeatureSet) -> np.ndarray:
    """Per-factor log-odds contributions from ``pred_contrib`` output (last column, the bias, dropped)."""
    return contrib[:, : len(features.names)] @ factor_matrix(features)


# -- phrasing -----------------------------------------------------------------------------------
def _n(value) -> int:
    try:
        return 0 if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value))
    except (TypeError, ValueError):
        return 0


def _s(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return str(value)


def _given(value) -> str | None:
    """A descriptive value (industry, country, ...) as a rep reads it: None when missing or `unknown`.
    `other` (a value the warehouse's known lists do not have) stays, to be phrased as "another"."""
    text = _s(value)
    return None if text == "unknown" else text


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


SENIORITY = {
    "c_level": "C-level executive",
    "vp": "VP",
    "director": "Director",
    "manager": "Manager",
    "individual_contributor": "Individual contributor",
    "intern": "Intern",
}


def _persona(r: dict) -> str:
    seniority, department = _s(r["seniority"]), _s(r["department"])
    who = SENIORITY.get(seniority or "")
    dept = department if department and department not in ("unknown", "other", "executive") else None
    if not who and not dept:
        return "No usable job title on record"
    if who and dept:
        return f"{who} in {dept.replace('_', ' ')}"
    return who or f"Works in {dept}"


def _company(r: dict) -> str:
    size, industry, revenue = _given(r["employee_band"]), _given(r["industry"]), _given(r["revenue_band"])
    parts = ["A"]
    if size and size != "other":
        parts.append(f"{size} employee")
    if industry == "other":
        parts.append("company in another industry")
    else:
        parts.append(f"{industry.replace('_', ' ')} company" if industry else "company of unknown industry")
    text = " ".join(parts)
    return f"{text} (revenue {revenue})" if revenue and revenue != "other" else text


def _pricing(r: dict) -> str:
    week, month = _n(r["pricing_views_7d"]), _n(r["pricing_views_30d"])
    if week:
        return f"{_plural(week, 'pricing-page visit')} in the last 7 days"
    if month:
        return f"{_plural(month, 'pricing-page visit')} in the last 30 days"
    return "No pricing-page visits in the last 30 days"


def _web(r: dict) -> str:
    month, quarter = _n(r["page_views_30d"]), _n(r["page_views_90d"])
    if month:
        return f"{_plural(month, 'page view')} on the website in the last 30 days"
    if quarter:
        return f"{_plural(quarter, 'page view')} in the last 90 days, none in the last 30"
    return "No website visits in the last 90 days"


def _case_studies(r: dict) -> str:
    weight = float(r["case_study_views_decayed"] or 0.0)
    if weight >= 0.5:
        return "Read customer case studies recently"
    if weight > 0:
        return "Looked at a case study in the last few months"
    return "No case-study reading in the last 90 days"


def _demo(r: dict) -> str:
    n = _n(r["demo_requests_90d"])
    if n == 1:
        return "Requested a demo in the last 90 days"
    if n:
        return f"{n} demo requests in the last 90 days"
    return "No demo request in the last 90 days"


def _email(r: dict) -> str:
    sends, opens, clicks = _n(r["email_sends_30d"]), _n(r["email_opens_30d"]), _n(r["email_clicks_30d"])
    if clicks:
        return f"Clicked {_plural(clicks, 'marketing email')} in the last 30 days"
    if opens:
        return f"Opened {_plural(opens, 'marketing email')} in the last 30 days"
    if sends:
        return f"Opened none of {_plural(sends, 'marketing email')} in the last 30 days"
    return "No marketing email in the last 30 days"


def _webinars(r: dict) -> str:
    n = _n(r["webinars_90d"])
    return f"Attended {_plural(n, 'webinar')} in the last 90 days" if n else "No webinar in the last 90 days"


def _recency(r: dict) -> str:
    days = r["days_since_last_touch"]
    week = _n(r["touches_7d"])
    velocity = float(r["engagement_velocity"] or 1.0)
    if week:
        trend = ", speeding up" if velocity > 1.2 else ", slowing down" if velocity < 0.8 else ""
        return f"{_plural(week, 'interaction')} in the last 7 days{trend}"
    if _s(days) is None:
        return "No activity in the last 90 days"
    # In the same windows as the reuse signature (features.RECENCY_EDGES): reused words stay true.
    days = _n(days)
    if days < 7:
        return "Last active in the last 7 days"
    if days < 30:
        return "Last active 1-4 weeks ago"
    if days < 90:
        return "Last active 1-3 months ago"
    return "Last active more than 3 months ago"


def _account_status(r: dict) -> str:
    status, plan, arr = _s(r["account_customer_status"]), _s(r["account_plan"]), _n(r["account_arr"])
    if status == "customer":
        return f"Account is a paying customer ({plan} plan, ARR ${arr:,})" if plan else "Account is a paying customer"
    if status == "trial":
        return "Account is on a product trial"
    if status == "churned":
        return "Account is a former customer (churned)"
    return "Account has never bought or trialled"


def _product(r: dict) -> str:
    users, active, new = _n(r["account_users_total"]), _n(r["account_active_users_7d"]), _n(r["account_users_new_30d"])
    if not users:
        return "Nobody at the account uses the product"
    text = f"{active} of {_plural(users, 'product user')} at the account active in the last 7 days"
    return f"{text}, {new} invited in the last 30" if new else text


def _account_buzz(r: dict) -> str:
    n = _n(r["account_marketing_touches_30d"])
    if n:
        return f"{_plural(n, 'marketing interaction')} from the account's people in the last 30 days"
    return "No marketing interactions from the account's people in the last 30 days"


def _country(r: dict) -> str:
    country = _given(r["country"])
    if country == "other":
        return "Based in another country"
    return f"Based in {country}" if country else "Country unknown"


def _channel(r: dict) -> str:
    source = _given(r["lead_source"])
    if source == "other":
        source = "another channel"
    return f"Came in via {source.replace('_', ' ')}" if source else "Unknown acquisition channel"


def _lead_age(r: dict) -> str:
    # In 30-day months, as the reuse signature buckets it: a reused reason never states a stale age.
    months = _n(r["lead_age_days"]) // 30
    return f"Lead created {_plural(months, 'month')} ago" if months else "Lead created less than a month ago"


PHRASES: dict[str, Callable[[dict], str]] = {
    "company": _company,
    "country": _country,
    "persona": _persona,
    "channel": _channel,
    "lead_age": _lead_age,
    "web": _web,
    "pricing": _pricing,
    "case_studies": _case_studies,
    "demo": _demo,
    "email": _email,
    "webinars": _webinars,
    "recency": _recency,
    "account_status": _account_status,
    "product": _product,
    "account_buzz": _account_buzz,
}


# The columns each phrase reads. A phrase is a pure function of these few values, and most leads
# share them (a handful of countries, personas, small counts), so `phrase_table` phrases each distinct
# input once per run instead of once per lead: that keeps the words off the nightly critical path.
PHRASE_INPUTS: dict[str, tuple[str, ...]] = {
    "company": ("employee_band", "industry", "revenue_band"),
    "country": ("country",),
    "persona": ("seniority", "department"),
    "channel": ("lead_source",),
    "lead_age": ("lead_age_days",),
    "web": ("page_views_30d", "page_views_90d"),
    "pricing": ("pricing_views_7d", "pricing_views_30d"),
    "case_studies": ("case_study_views_decayed",),
    "demo": ("demo_requests_90d",),
    "email": ("email_sends_30d", "email_opens_30d", "email_clicks_30d"),
    "webinars": ("webinars_90d",),
    "recency": ("days_since_last_touch", "touches_7d", "engagement_velocity"),
    "account_status": ("account_customer_status", "account_plan", "account_arr"),
    "product": ("account_users_total", "account_active_users_7d", "account_users_new_30d"),
    "account_buzz": ("account_marketing_touches_30d",),
}
assert set(PHRASE_INPUTS) == set(PHRASES), set(PHRASES) ^ set(PHRASE_INPUTS)


# -- generic phrasing, for reasons an analyst declared ----------------------------------------------
def label(feature: Feature) -> str:
    """What a feature is, from the first clause of its description without the "Group - " prefix
    ("Engagement - page views, last 7 days (windows ...)." → "Page views, last 7 days")."""
    text = re.split(r"\s\(|\.\s|\.$|;", feature.description or "")[0].strip()
    if " - " in text:
        text = text.split(" - ", 1)[1].strip()
    text = text or feature.name.replace("_", " ")
    return text[:1].upper() + text[1:]


def value_text(value, categorical: bool) -> str | None:
    """A value as a rep reads it: categories with spaces, whole numbers without decimals, others to one
    decimal; None when missing."""
    if categorical:
        text = _given(value)
        return text.replace("_", " ") if text else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number):
        return None
    return f"{number:,.0f}" if abs(number - round(number)) < 1e-9 else f"{number:,.1f}"


def generic_phrase(feature: Feature, value) -> str:
    text = value_text(value, feature.categorical)
    if text is None:
        return f"{label(feature)}: not known"
    if feature.phrase:
        return feature.phrase.format(value=text)
    return f"{label(feature)}: {text}"


def phrasers(features: FeatureSet, columns) -> dict[str, tuple[tuple[str, ...], Callable[[dict], str]]]:
    """For every factor of ``features``: the columns its phrase reads and the phrase. Built-in when its
    inputs are all in ``columns``, generic (one clause per feature) otherwise."""
    available = set(columns)
    out: dict[str, tuple[tuple[str, ...], Callable[[dict], str]]] = {}
    for factor in features.factors:
        if factor in PHRASES and set(PHRASE_INPUTS[factor]) <= available:
            out[factor] = (PHRASE_INPUTS[factor], PHRASES[factor])
            continue
        members = tuple(f for f in features.features if f.factor == factor)

        def phrase(r: dict, members: tuple[Feature, ...] = members) -> str:
            return "; ".join(generic_phrase(f, r[f.name]) for f in members)

        out[factor] = (tuple(f.name for f in members), phrase)
    return out


def top_factors(contrib: np.ndarray, features: FeatureSet, top: int = TOP) -> tuple[np.ndarray, np.ndarray]:
    """Each row's reasons as (factor index, impact), shape (rows, 2 × ``top``): the ``top`` factors with
    the largest positive contribution (largest first), then the ``top`` most negative (most negative
    first). Slots a row cannot fill (too few positive or negative factors) hold factor index -1; a factor
    contributing exactly zero is never a reason."""
    by_factor = factor_contributions(contrib, features)
    order = np.argsort(-by_factor, axis=1, kind="stable")
    chosen = np.concatenate([order[:, :top], order[:, ::-1][:, :top]], axis=1)
    impact = np.take_along_axis(by_factor, chosen, axis=1)
    width = chosen.shape[1] // 2
    keep = np.concatenate([impact[:, :width] > 0, impact[:, width:] < 0], axis=1)
    return np.where(keep, chosen, -1), impact


def phrase_table(frame: pd.DataFrame, chosen: np.ndarray, features: FeatureSet) -> np.ndarray:
    """The text of every chosen factor (object array shaped like ``chosen``; None where it is -1)."""
    texts = np.full(chosen.shape, None, dtype=object)
    table = phrasers(features, frame.columns)
    for j, factor in enumerate(features.factors):
        rows, slots = np.nonzero(chosen == j)
        if not len(rows):
            continue
        inputs, phrase = table[factor]
        # Only the rows that show this factor are converted to Python values, not the whole column.
        columns = [frame[name].iloc[rows].to_numpy(dtype=object, na_value=None) for name in inputs]
        cache, out = {}, []
        for key in zip(*columns, strict=True):
            text = cache.get(key)
            if text is None:
                text = cache[key] = phrase(dict(zip(inputs, key, strict=True)))
            out.append(text)
        texts[rows, slots] = out
    return texts


def explain(frame: pd.DataFrame, contrib: np.ndarray, features: FeatureSet, top: int = TOP) -> list[list[Reason]]:
    """For each row of ``frame`` (the features) and its ``pred_contrib`` row: the ``top`` factors with the
    largest positive contribution (largest first), then the ``top`` most negative (most negative first).
    Factors contributing exactly zero are never reasons."""
    chosen, impact = top_factors(contrib, features, top)
    texts = phrase_table(frame, chosen, features)
    return [
        [Reason(features.factors[j], v, t) for j, v, t in zip(c, i, x, strict=True) if j >= 0]
        for c, i, x in zip(chosen.tolist(), impact.tolist(), texts.tolist(), strict=True)
    ]


def explain_formatted(
    frame: pd.DataFrame, contrib: np.ndarray, features: FeatureSet, top: int = TOP
) -> list[list[str]]:
    """What ``lead_scores.reasons`` stores: :func:`explain`'s reasons as :meth:`Reason.formatted` strings,
    without building a Reason per lead and factor (the nightly hot path)."""
    chosen, impact = top_factors(contrib, features, top)
    texts = phrase_table(frame, chosen, features)
    return [
        [format_reason(v, t) for j, v, t in zip(c, i, x, strict=True) if j >= 0]
        for c, i, x in zip(chosen.tolist(), impact.tolist(), texts.tolist(), strict=True)
    ]
