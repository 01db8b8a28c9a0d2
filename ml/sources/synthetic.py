"""A seeded, scalable generator of a realistic B2B SaaS company's raw data.

The story: accounts have a hidden *fit* (industry, size, country); each lead adds a persona fit
(seniority, department) and a hidden *intent* (driven partly by the acquisition channel). Some leads
are *in market* (the keener, the likelier); they start evaluating the product at a hidden moment
``evaluation_start`` and from then on behave like buyers (page views weighted towards pricing and
case studies, demo requests, trials), more so with intent and fit. An in-market lead converts with
probability ``p_convert = sigmoid(b0 + b1·fit + b2·intent + b3·fit·intent)`` (fit amplifies intent)
at ``evaluation_start + U(delay_min, delay_max)`` days; the others never do.

Behaviour depends only on (fit, intent, in_market, evaluation_start), never on whether or when a lead
actually converts, so the oracle probability computed from those hidden values
(:func:`oracle_probability`) is the best any model could achieve on the observable data. It is
written to schema ``oracle``, which no dbt model and no feature reads.

Dirt real exports have is injected on purpose (duplicate contacts, inconsistent casing, missing
titles, test accounts, malformed emails, late-arriving and future-dated events, unknown enum values,
negative amounts): the warehouse must clean or quarantine it.

The raw tables are an *export of the company's CRM*: the generator first creates the CRM's records
(HubSpot contacts and companies; Salesforce Accounts, Leads and Contacts, with their own record ids),
then exports them with the ids an ELT tool would carry, dirt included (ids not yet resolved, 15-character
and lower-cased Salesforce ids). The CRM as it is, with canonical ids, is written to schema
``synthetic_crm``; the CRM sandbox seeds itself from it and no dbt model or feature reads it.

Everything is vectorised with numpy and generated in chunks (events by chunks of leads, product usage
by chunks of user-days), so the bench scale (120k accounts, 1.2M leads, 35M events, 15M user-days) and
twice it fit well within 8 GB; the same seed and configuration always give the same tables, whatever
the chunks of product usage (they only bound memory).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from activation.salesforce_ids import KEY_PREFIXES
from ml.sources.landing import DEFAULT_MAX_SHRINK, Hook, land
from ml.sources.owners import (
    REP_IN_HUBSPOT_RATE,
    REP_IN_SALESFORCE_RATE,
    Owners,
    make_owners,
)
from ml.sources.schema import RAW_TABLES, create_table_sql
from ml.sources.vocabulary import KNOWN_VALUES

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400.0


# ---------------------------------------------------------------------------------------------
# Vocabularies with their hidden effects. Effects are on the logit scale; the warehouse only sees
# the labels (and, for titles, free text it has to normalise). The names are the warehouse's known
# values (dbt/dbt_project.yml var known_values, via ml/sources/vocabulary.py); the generator keeps its
# own effects, by name. tests/test_vocabularies.py holds every name here to the known lists.
# ---------------------------------------------------------------------------------------------
def _vocabulary(column: str, effects: dict[str, tuple[float, ...]]) -> tuple[np.ndarray, ...]:
    """The known values of ``column`` that have effects, in the known order, then one array per effect
    aligned with them. A known value without effects (one a real CRM needed) is never generated."""
    names = [name for name in KNOWN_VALUES[column] if name in effects]
    return np.array(names), *(np.array(v) for v in zip(*(effects[name] for name in names), strict=True))


INDUSTRY_EFFECTS = {  # name: (weight, fit)
    "software": (0.2, 0.6),
    "financial_services": (0.12, 0.4),
    "professional_services": (0.12, 0.3),
    "healthcare": (0.1, 0.1),
    "media": (0.07, 0.0),
    "retail": (0.1, -0.1),
    "manufacturing": (0.11, -0.1),
    "logistics": (0.07, -0.2),
    "education": (0.06, -0.4),
    "government": (0.05, -0.5),
}
INDUSTRIES, INDUSTRY_WEIGHTS, INDUSTRY_FIT = _vocabulary("industry", INDUSTRY_EFFECTS)

EMPLOYEE_EFFECTS = {  # band: (weight, fit)
    "1-10": (0.22, -0.8),
    "11-50": (0.26, -0.2),
    "51-200": (0.22, 0.4),
    "201-1000": (0.16, 0.5),
    "1001-5000": (0.09, 0.2),
    "5000+": (0.05, -0.1),
}
EMPLOYEE_BANDS, EMPLOYEE_WEIGHTS, EMPLOYEE_FIT = _vocabulary("employee_band", EMPLOYEE_EFFECTS)
REVENUE_BANDS = np.array(KNOWN_VALUES["revenue_band"])  # ascending: drawn next to the employee band

COUNTRY_EFFECTS = {  # ISO code: (weight, fit)
    "US": (0.34, 0.2),
    "GB": (0.11, 0.2),
    "DE": (0.09, 0.1),
    "FR": (0.06, 0.0),
    "NL": (0.04, 0.1),
    "CA": (0.06, 0.1),
    "AU": (0.05, 0.0),
    "SE": (0.03, 0.1),
    "ES": (0.04, -0.1),
    "IN": (0.07, -0.3),
    "BR": (0.06, -0.3),
    "JP": (0.05, -0.2),
}
COUNTRIES, COUNTRY_WEIGHTS, COUNTRY_FIT = _vocabulary("country", COUNTRY_EFFECTS)

SENIORITY_FIT = {
    "c_level": 0.6,
    "vp": 0.7,
    "director": 0.6,
    "manager": 0.3,
    "individual_contributor": 0.0,
    "intern": -1.0,
}
DEPARTMENT_FIT = {
    "executive": 0.3,
    "engineering": 0.5,
    "data": 0.6,
    "it": 0.4,
    "operations": 0.1,
    "marketing": 0.0,
    "sales": -0.1,
    "finance": -0.2,
    "hr": -0.5,
}
# (title as typed, true seniority, true department, weight). dbt recovers seniority and department
# from the text alone, with pattern rules (macros/normalise_title.sql).
TITLES: list[tuple[str, str, str, float]] = [
    ("CEO", "c_level", "executive", 2),
    ("Founder & CEO", "c_level", "executive", 1),
    ("CTO", "c_level", "engineering", 2),
    ("CFO", "c_level", "finance", 1),
    ("CMO", "c_level", "marketing", 1),
    ("COO", "c_level", "operations", 1),
    ("Chief Data Officer", "c_level", "data", 0.5),
    ("VP of Engineering", "vp", "engineering", 2),
    ("VP Marketing", "vp", "marketing", 2),
    ("VP of Sales", "vp", "sales", 2),
    ("VP Operations", "vp", "operations", 1),
    ("VP Finance", "vp", "finance", 1),
    ("VP, Data & Analytics", "vp", "data", 1),
    ("Director of Engineering", "director", "engineering", 3),
    ("Marketing Director", "director", "marketing", 3),
    ("Sales Director", "director", "sales", 3),
    ("Director, IT", "director", "it", 2),
    ("Head of Data", "director", "data", 2),
    ("Head of Operations", "director", "operations", 2),
    ("Engineering Manager", "manager", "engineering", 4),
    ("Marketing Manager", "manager", "marketing", 4),
    ("Sales Manager", "manager", "sales", 3),
    ("IT Manager", "manager", "it", 3),
    ("Analytics Manager", "manager", "data", 2),
    ("HR Manager", "manager", "hr", 2),
    ("Finance Manager", "manager", "finance", 2),
    ("Software Engineer", "individual_contributor", "engineering", 6),
    ("Senior Software Engineer", "individual_contributor", "engineering", 4),
    ("Data Analyst", "individual_contributor", "data", 4),
    ("Data Engineer", "individual_contributor", "data", 3),
    ("Marketing Specialist", "individual_contributor", "marketing", 4),
    ("Account Executive", "individual_contributor", "sales", 4),
    ("Sales Development Representative", "individual_contributor", "sales", 3),
    ("Systems Administrator", "individual_contributor", "it", 3),
    ("Accountant", "individual_contributor", "finance", 2),
    ("Recruiter", "individual_contributor", "hr", 2),
    ("Operations Analyst", "individual_contributor", "operations", 3),
    ("Intern", "intern", "engineering", 1),
    ("Marketing Intern", "intern", "marketing", 1),
]
TITLE_TEXT = np.array([t[0] for t in TITLES])
TITLE_WEIGHTS = np.array([t[3] for t in TITLES], dtype=float)
TITLE_FIT = np.array([SENIORITY_FIT[t[1]] + DEPARTMENT_FIT[t[2]] for t in TITLES])

LEAD_SOURCE_EFFECTS = {  # name: (weight, intent)
    "organic_search": (0.24, 0.0),
    "paid_search": (0.16, 0.1),
    "paid_social": (0.14, -0.3),
    "referral": (0.08, 0.6),
    "event": (0.08, 0.3),
    "outbound": (0.14, -0.5),
    "content_download": (0.1, -0.1),
    "partner": (0.06, 0.4),
}
LEAD_SOURCES, LEAD_SOURCE_WEIGHTS, LEAD_SOURCE_INTENT = _vocabulary("lead_source", LEAD_SOURCE_EFFECTS)

# Event vocabulary. Codes index these arrays; strings are materialised inside DuckDB, which is far
# cheaper than building 50M Python strings. The generator's code says which code is which event, so
# the names stay spelled out here; the first six are the known event types, the last two are not.
EVENT_TYPES = [
    "email_send",
    "email_open",
    "email_click",
    "page_view",
    "form_submit",
    "webinar_attended",
    "pageview",
    "sms_send",
]  # the last two are unknown-enum dirt
BAD_EVENT_TYPE_CODES = np.array([6, 7])
PAGE_PATHS = [
    "/blog/data-quality-checklist",
    "/blog/pipeline-patterns",
    "/docs/getting-started",
    "/docs/api",
    "/customers/case-study-fintech",
    "/customers/case-study-retail",
    "/pricing",
    "/pricing/enterprise",
    "/demo",
    "/about",
    "/careers",
    "/",
]
PAGE_CATEGORIES = {  # category -> indices into PAGE_PATHS
    "blog": [0, 1],
    "docs": [2, 3],
    "case_study": [4, 5],
    "pricing": [6, 7],
    "demo": [8],
    "other": [9, 10, 11],
}
CATEGORY_ORDER = ["blog", "docs", "case_study", "pricing", "demo", "other"]
BACKGROUND_MIX = np.array([0.5, 0.2, 0.06, 0.03, 0.0, 0.21])
EVALUATION_MIX = np.array([0.06, 0.22, 0.17, 0.33, 0.05, 0.17])

# The CRM. Who is in which system, and the dirt the ELT tool adds to the ids it exports.
CRM_SCHEMA = "synthetic_crm"
CRM_STREAM = 0xC12  # the CRM's own random stream (see SyntheticCompany.crm)
OWNER_STREAM = 0x0E1  # the owners' own random stream (ml/sources/owners.py)
HUBSPOT_COMPANY_RATE = 0.98  # accounts with a HubSpot company
SALESFORCE_ACCOUNT_RATE = 0.93  # accounts with a Salesforce Account (every account with an opportunity has one)
HUBSPOT_UNCONSENTED_RATE = 0.80  # people without marketing consent who are in HubSpot (all consented ones are)
SALESFORCE_DIRECT_CONTACT_RATE = 0.08  # unconverted people created directly as Contacts
SALESFORCE_ABSENT_RATE = 0.04  # unconverted people not in Salesforce at all
EXPORT_HUBSPOT_ID_LAG_RATE = 0.04  # exported rows whose HubSpot contact id the ELT tool had not resolved yet
EXPORT_SALESFORCE_ID15_RATE = 0.02  # Salesforce ids exported in their 15-character form
EXPORT_SALESFORCE_LOWER_RATE = 0.01  # 18-character ids lower-cased on the way (a spreadsheet)
LEAD_STATUSES = np.array(["Open - Not Contacted", "Working - Contacted", "Closed - Not Converted"])
LEAD_STATUS_WEIGHTS = np.array([0.5, 0.35, 0.15])
CONVERTED_LEAD_STATUS = "Closed - Converted"
SALESFORCE_POD = "8d"
# synthetic_crm, exactly as the sandbox seeder reads it: (column, DuckDB type) per table.
CRM_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "hubspot_contacts": (
        ("id", "VARCHAR"),
        ("email", "VARCHAR"),
        ("firstname", "VARCHAR"),
        ("lastname", "VARCHAR"),
        ("hubspot_owner_id", "VARCHAR"),
    ),
    "hubspot_companies": (
        ("id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("domain", "VARCHAR"),
        ("hubspot_owner_id", "VARCHAR"),
    ),
    "hubspot_owners": (
        ("id", "VARCHAR"),
        ("email", "VARCHAR"),
        ("firstName", "VARCHAR"),
        ("lastName", "VARCHAR"),
        ("userId", "VARCHAR"),
        ("archived", "BOOLEAN"),
    ),
    "salesforce_users": (
        ("Id", "VARCHAR"),
        ("FirstName", "VARCHAR"),
        ("LastName", "VARCHAR"),
        ("Email", "VARCHAR"),
        ("IsActive", "BOOLEAN"),
    ),
    "salesforce_accounts": (("Id", "VARCHAR"), ("Name", "VARCHAR"), ("Website", "VARCHAR"), ("OwnerId", "VARCHAR")),
    "salesforce_leads": (
        ("Id", "VARCHAR"),
        ("FirstName", "VARCHAR"),
        ("LastName", "VARCHAR"),
        ("Company", "VARCHAR"),
        ("Email", "VARCHAR"),
        ("Status", "VARCHAR"),
        ("IsConverted", "BOOLEAN"),
        ("ConvertedContactId", "VARCHAR"),
        ("ConvertedAccountId", "VARCHAR"),
        ("OwnerId", "VARCHAR"),
    ),
    "salesforce_contacts": (
        ("Id", "VARCHAR"),
        ("FirstName", "VARCHAR"),
        ("LastName", "VARCHAR"),
        ("Email", "VARCHAR"),
        ("AccountId", "VARCHAR"),
        ("OwnerId", "VARCHAR"),
    ),
}

# Known values too (plan, opportunity_stage), spelled out because the code below indexes them by position.
PLANS = np.array(["starter", "professional", "enterprise"])
PLAN_PRICE_PER_SEAT = np.array([25.0, 55.0, 95.0])
STAGES = ["prospecting", "qualification", "proposal", "negotiation", "closed_won", "closed_lost"]


def _default_end_date() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. ``n_accounts`` is the scale knob; everything else scales with it."""

    n_accounts: int = 2_000
    seed: int = 7
    end_date: dt.date = field(default_factory=_default_end_date)
    history_days: int = 730
    leads_per_account: float = 10.0
    lead_chunk_size: int = 200_000
    # Conversion model (logit scale) and timing.
    intercept: float = -2.4
    in_market_intercept: float = -0.4
    in_market_intent_weight: float = 0.9
    fit_weight: float = 0.7
    intent_weight: float = 0.9
    interaction_weight: float = 0.4
    evaluation_delay_mean_days: float = 40.0
    conversion_delay_min_days: float = 10.0
    conversion_delay_max_days: float = 120.0
    evaluation_window_days: float = 60.0

    @property
    def start_date(self) -> dt.date:
        return self.end_date - dt.timedelta(days=self.history_days)


SCALES: dict[str, int] = {"tiny": 300, "small": 2_000, "bench": 120_000}
# Product usage is drawn and written this many user-days at a time. It bounds memory and never changes the
# rows (the draws are taken in the same order whatever the chunks); read at call time, so tests can shrink it.
USAGE_ROWS_PER_CHUNK = 2_000_000


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def oracle_probability(
    p_convert: np.ndarray,
    evaluation_start_day: np.ndarray,
    as_of_day: np.ndarray,
    delay_min: float,
    delay_max: float,
    horizon_days: float = 90.0,
) -> np.ndarray:
    """P(a lead converts in (as_of, as_of + horizon] | it has not converted by as_of, hidden state).

    Days are on any common scale. Conversion happens with probability ``p`` at
    ``evaluation_start + U(delay_min, delay_max)``, so with F the uniform CDF of the conversion time:
    ``p·(F(as_of + h) − F(as_of)) / (1 − p·F(as_of))``.
    """

    def cdf(day: np.ndarray) -> np.ndarray:
        return np.clip((day - evaluation_start_day - delay_min) / (delay_max - delay_min), 0.0, 1.0)

    at_risk = 1.0 - p_convert * cdf(as_of_day)
    return np.where(at_risk > 0, p_convert * (cdf(as_of_day + horizon_days) - cdf(as_of_day)) / at_risk, 0.0)


def fair_probability(
    p_convert: np.ndarray,
    evaluation_start_day: np.ndarray,
    as_of_day: np.ndarray,
    delay_min: float,
    delay_max: float,
    evaluation_delay_mean: float | np.ndarray,
    created_day: np.ndarray | None = None,
    horizon_days: float = 90.0,
) -> np.ndarray:
    """P(convert in (as_of, as_of + horizon] | not converted by as_of, the hidden traits, and only what
    has happened by as_of): the best a model could do even in principle.

    :func:`oracle_probability` also knows *when* an evaluation that has not begun by as_of will begin,
    which nothing observable by as_of reveals, so it is an unreachable ceiling. This one uses the
    evaluation start only once it has happened (then it equals the oracle). Before that it averages
    over the start: ``evaluation_start − created ~ Exp(mean m)`` is memoryless, so given no start by
    as_of the remaining wait ``u = start − max(as_of, created)`` is again ``Exp(m)``. Nothing can have
    converted before its evaluation started (``delay_min ≥ 0``), so nobody has left the risk set and
    the probability is ``p·E_u[F(as_of + h)]``. With ``F(t) = clip((t − start − delay_min)/w, 0, 1)``,
    ``w = delay_max − delay_min``, ``x⁺ = max(x, 0)`` and ``Φ(x) = E[(x − u)⁺] = x − m·(1 − e^(−x/m))``
    for ``x ≥ 0``, the clipped line is a difference of two hinges, so exactly
    ``p·(Φ((g − delay_min)⁺) − Φ((g − delay_max)⁺))/w`` where ``g = h − (created − as_of)⁺``.
    """
    if delay_min < 0 or delay_max <= delay_min:
        raise ValueError("need 0 <= delay_min < delay_max")
    p_convert = np.asarray(p_convert, dtype=float)
    start = np.asarray(evaluation_start_day, dtype=float)
    as_of = np.asarray(as_of_day, dtype=float)
    mean = np.asarray(evaluation_delay_mean, dtype=float)
    not_yet_created = 0.0 if created_day is None else np.maximum(np.asarray(created_day, dtype=float) - as_of, 0.0)
    gap = horizon_days - not_yet_created
    safe_mean = np.where(mean > 0, mean, 1.0)

    def expected_hinge(x: np.ndarray) -> np.ndarray:
        x = np.maximum(x, 0.0)
        return np.where(mean > 0, x + safe_mean * np.expm1(-x / safe_mean), x)

    waiting = p_convert * (expected_hinge(gap - delay_min) - expected_hinge(gap - delay_max)) / (delay_max - delay_min)
    started = oracle_probability(p_convert, start, as_of, delay_min, delay_max, horizon_days)
    return np.clip(np.where(start <= as_of, started, waiting), 0.0, 1.0)


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ragged per-owner counts, the owner of each child and the child's index within its owner."""
    counts = counts.astype(np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    within = np.arange(counts.sum()) - np.repeat(starts, counts)
    return owner, within


def _runs(counts: np.ndarray, per_run: int) -> Iterator[tuple[int, int]]:
    """Consecutive index ranges ``[lo, hi)`` of ``counts`` whose counts add up to about ``per_run`` each (at
    least one index per range, however large its count)."""
    ends = np.cumsum(counts)
    lo = 0
    while lo < len(counts):
        done = int(ends[lo - 1]) if lo else 0
        hi = max(lo + 1, int(np.searchsorted(ends, done + per_run, side="right")))
        yield lo, hi
        lo = hi


def _narrow(values: np.ndarray) -> np.ndarray:
    """Integers in the smallest dtype that holds every one of them exactly (their range decides, no guess):
    tens of millions of small counts take a byte each instead of eight."""
    if not values.size:
        return values
    return values.astype(np.promote_types(np.min_scalar_type(values.min()), np.min_scalar_type(values.max())))


def _draw_in_chunks(draw: Callable[[int], np.ndarray], n: int, per_chunk: int) -> np.ndarray:
    """``draw(n)`` as successive ``draw(k)`` calls of at most ``per_chunk`` values, each narrowed.

    numpy's generators hand out numbers in order, so a draw split in consecutive parts gives the same values
    as one draw; this way no int64 array of ``n`` is ever held."""
    parts = [_narrow(draw(min(per_chunk, n - lo))) for lo in range(0, n, per_chunk)]
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


def _sample_paths(rng: np.random.Generator, mix: np.ndarray, n: int) -> np.ndarray:
    """Page-path codes: a category by ``mix``, then a path within it uniformly."""
    category = rng.choice(len(CATEGORY_ORDER), n, p=mix / mix.sum())
    paths = np.empty(n, dtype=np.int16)
    for ci, name in enumerate(CATEGORY_ORDER):
        sel = category == ci
        options = np.array(PAGE_CATEGORIES[name])
        paths[sel] = options[rng.integers(0, len(options), sel.sum())]
    return paths


def _messy_case(rng: np.random.Generator, values: np.ndarray, rate: float) -> np.ndarray:
    """Upper-, title- or space-pad a fraction of values, as hand-typed CRM fields are."""
    out = values.astype(object)
    pick = np.flatnonzero(rng.random(len(values)) < rate)
    style = rng.integers(0, 3, len(pick))
    for i, s in zip(pick, style, strict=True):
        v = str(out[i])
        out[i] = v.upper() if s == 0 else (v.title().replace("_", " ") if s == 1 else f" {v} ")
    return out


_BASE62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)
_SUFFIX_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", np.uint8)
# Record ids are numpy fixed-width byte strings, NO_ID where there is no record: the CRM's millions of ids
# are made, indexed and dirtied as arrays and reach DuckDB as Arrow arrays, never as one Python str each
# (that alone would cost seconds at the bench scale).
NO_ID = b""


def salesforce_ids(prefix: str, numbers: np.ndarray, pod: str = SALESFORCE_POD) -> np.ndarray:
    """``activation.salesforce_ids.make_salesforce_id`` for a whole array of record numbers at once.

    The same 18-character ids (a test holds the two to each other): key prefix, pod, the number in 10
    base-62 digits, then the suffix that records which of the first 15 characters are upper case.
    """
    numbers = np.asarray(numbers, dtype=np.int64)
    if len(prefix) != 3 or len(pod) != 2 or (numbers.size and (numbers.min() < 0 or numbers.max() >= 62**10)):
        raise ValueError("prefix has 3 characters, pod 2, and numbers fit in 10 base-62 digits")
    chars = np.empty((len(numbers), 18), np.uint8)
    chars[:, :3] = np.frombuffer(prefix.encode(), np.uint8)
    chars[:, 3:5] = np.frombuffer(pod.encode(), np.uint8)
    rest = numbers.copy()
    for position in range(14, 4, -1):
        rest, digit = np.divmod(rest, 62)
        chars[:, position] = _BASE62[digit]
    # Per block of 5 characters, one bit per upper-case letter, spelled as one character of the alphabet.
    upper = (chars[:, :15] >= ord("A")) & (chars[:, :15] <= ord("Z"))
    chars[:, 15:] = _SUFFIX_ALPHABET[(upper.reshape(-1, 3, 5) * (1 << np.arange(5))).sum(axis=2)]
    return chars.view("S18").ravel()


def hubspot_ids(rng: np.random.Generator, count: int, digits: int) -> np.ndarray:
    """``count`` distinct random record ids of exactly ``digits`` digits (HubSpot ids are plain numbers)."""
    low = 10 ** (digits - 1)
    numbers = rng.choice(9 * low, count, replace=False) + low
    chars = (numbers[:, None] // 10 ** np.arange(digits - 1, -1, -1) % 10 + ord("0")).astype(np.uint8)
    return np.ascontiguousarray(chars).view(f"S{digits}").ravel()


def _new_salesforce_records(rng: np.random.Generator, sobject: str, count: int) -> np.ndarray:
    """Ids of ``count`` new records of one object: consecutive record numbers from a random start."""
    start = int(rng.integers(62**6, 62**7))
    return salesforce_ids(KEY_PREFIXES[sobject], np.arange(start, start + count))


def _scatter(mask: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``ids`` at the positions where ``mask`` holds, NO_ID elsewhere."""
    out = np.full(len(mask), NO_ID, dtype=ids.dtype)
    out[mask] = ids
    return out


def _arrow_strings(values: np.ndarray) -> pa.Array:
    """Fixed-width ASCII bytes to an Arrow string array (empty -> null), straight from the buffer."""
    width = values.dtype.itemsize
    chars = np.ascontiguousarray(values).view(np.uint8).reshape(len(values), width)
    filled = chars != 0  # values hold no NUL: numpy pads shorter ones with trailing NULs
    lengths = filled.sum(axis=1)
    offsets = np.zeros(len(values) + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    data, validity = np.ascontiguousarray(chars[filled]), np.packbits(lengths > 0, bitorder="little")
    return pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets), pa.py_buffer(data), pa.py_buffer(validity))


def _id_series(ids: np.ndarray) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(_arrow_strings(ids)))


def exported_salesforce_ids(rng: np.random.Generator, ids: np.ndarray) -> np.ndarray:
    """Salesforce ids as an export carries them: a few in the 15-character form, a few 18-character ones
    lower-cased by a spreadsheet. Each still names its record (staging restores the canonical id)."""
    present = ids != NO_ID
    short = present & (rng.random(len(ids)) < EXPORT_SALESFORCE_ID15_RATE)
    lower = present & ~short & (rng.random(len(ids)) < EXPORT_SALESFORCE_LOWER_RATE)
    out = ids.copy()
    out[short] = ids[short].astype("S15")  # the first 15 characters, which are the id
    out[lower] = np.strings.lower(ids[lower])
    return out


@dataclass(frozen=True)
class _CrmIdentity:
    """Who is which record in the CRM, with canonical ids (NO_ID: no record).

    Per raw account row: ``hubspot_company``, ``salesforce_account``. Per raw contact row (originals, then
    duplicates): ``hubspot_contact`` (a duplicate shares its original's), ``salesforce_lead``,
    ``salesforce_contact``, ``converted`` (the Lead became the Contact), ``duplicate``.
    """

    hubspot_company: np.ndarray
    salesforce_account: np.ndarray
    hubspot_contact: np.ndarray
    salesforce_lead: np.ndarray
    salesforce_contact: np.ndarray
    converted: np.ndarray
    duplicate: np.ndarray


def crm_identity(
    rng: np.random.Generator,
    person_account: np.ndarray,
    consent: np.ndarray,
    duplicate_of: np.ndarray,
    opportunities: pd.DataFrame,
    n_accounts: int,
) -> _CrmIdentity:
    """The CRM's records of the company's accounts and people (``person_account``: account index per person;
    ``duplicate_of``: person index of each duplicate contact row)."""
    n_people, n_dups = len(person_account), len(duplicate_of)
    # Companies. Opportunities live in Salesforce, so every account with one has an Account there; the
    # others are drawn so that SALESFORCE_ACCOUNT_RATE of all accounts have one.
    in_hubspot = rng.random(n_accounts) < HUBSPOT_COMPANY_RATE
    hubspot_company = _scatter(in_hubspot, hubspot_ids(rng, int(in_hubspot.sum()), 10))
    has_opportunity = np.zeros(n_accounts, bool)
    has_opportunity[opportunities["account_num"].to_numpy() - 1] = True
    n_free = n_accounts - int(has_opportunity.sum())
    rate = np.clip((SALESFORCE_ACCOUNT_RATE * n_accounts - (n_accounts - n_free)) / max(n_free, 1), 0.0, 1.0)
    in_salesforce = has_opportunity | (rng.random(n_accounts) < rate)
    salesforce_account = _scatter(in_salesforce, _new_salesforce_records(rng, "Account", int(in_salesforce.sum())))

    # People. Every consented person is in HubSpot, so a nightly sync never misses one for good.
    person_in_hubspot = consent | (rng.random(n_people) < HUBSPOT_UNCONSENTED_RATE)
    hubspot_contact = _scatter(person_in_hubspot, hubspot_ids(rng, int(person_in_hubspot.sum()), 11))
    # The primary contact of an opportunity was converted: a Lead (kept) and a Contact at the Account.
    converted = np.zeros(n_people, bool)
    converted[opportunities["contact_num"].to_numpy() - 1] = True
    # Of the others, a few were created directly as Contacts (at an Account), a few are not in Salesforce.
    u, direct_rate, absent_rate = rng.random(n_people), SALESFORCE_DIRECT_CONTACT_RATE, SALESFORCE_ABSENT_RATE
    direct = ~converted & (u < direct_rate) & in_salesforce[person_account]
    absent = ~converted & (u >= direct_rate) & (u < direct_rate + absent_rate)
    has_lead, has_contact = ~direct & ~absent, converted | direct
    # A duplicate is the person created again: the same HubSpot contact (HubSpot keeps one per address),
    # but a Lead of its own in Salesforce, never converted.
    n_leads = int(has_lead.sum())
    leads = _new_salesforce_records(rng, "Lead", n_leads + n_dups)
    contacts = _new_salesforce_records(rng, "Contact", int(has_contact.sum()))
    no_id = np.full(n_dups, NO_ID, dtype=contacts.dtype)
    return _CrmIdentity(
        hubspot_company=hubspot_company,
        salesforce_account=salesforce_account,
        hubspot_contact=np.concatenate([hubspot_contact, hubspot_contact[duplicate_of]]),
        salesforce_lead=np.concatenate([_scatter(has_lead, leads[:n_leads]), leads[n_leads:]]),
        salesforce_contact=np.concatenate([_scatter(has_contact, contacts), no_id]),
        converted=np.concatenate([converted, np.zeros(n_dups, bool)]),
        duplicate=np.concatenate([np.zeros(n_people, bool), np.ones(n_dups, bool)]),
    )


def crm_records(
    rng: np.random.Generator,
    ids: _CrmIdentity,
    accounts: pd.DataFrame,
    contacts: pd.DataFrame,
    contact_account: np.ndarray,
    malformed_email: np.ndarray,
    owners: _OwnerIds,
) -> dict[str, pa.Table]:
    """Schema ``synthetic_crm`` (:data:`CRM_TABLES`): the records as the CRMs hold them, canonical ids.

    ``contacts`` are the raw contact rows, ``contact_account`` their account index; ``owners`` the owners'
    CRM ids per account and contact row. Addresses are stored
    lower-cased and trimmed, and not at all when malformed (both CRMs refuse them).
    """
    name, domain = pa.array(accounts["account_name"]), pa.array(accounts["domain"])
    first, last = pa.array(contacts["first_name"]), pa.array(contacts["last_name"])
    email = pc.if_else(
        pa.array(malformed_email),
        pa.scalar(None, pa.string()),
        pc.utf8_lower(pc.utf8_trim_whitespace(pa.array(contacts["email"]))),
    )
    company, account = ids.hubspot_company != NO_ID, ids.salesforce_account != NO_ID
    person = ~ids.duplicate & (ids.hubspot_contact != NO_ID)  # one HubSpot contact per person
    lead = ids.salesforce_lead != NO_ID
    contact = ~ids.duplicate & (ids.salesforce_contact != NO_ID)
    status = np.where(
        ids.converted,
        len(LEAD_STATUSES),
        rng.choice(len(LEAD_STATUSES), len(ids.converted), p=LEAD_STATUS_WEIGHTS),
    )
    statuses = pa.array([*LEAD_STATUSES, CONVERTED_LEAD_STATUS])
    converted_account = np.where(ids.converted, ids.salesforce_account[contact_account], NO_ID)
    return {
        "hubspot_contacts": pa.table(
            {
                "id": _arrow_strings(ids.hubspot_contact[person]),
                "email": email.filter(person),
                "firstname": first.filter(person),
                "lastname": last.filter(person),
                "hubspot_owner_id": _arrow_strings(owners.contact_hubspot[person]),
            }
        ),
        "hubspot_companies": pa.table(
            {
                "id": _arrow_strings(ids.hubspot_company[company]),
                "name": name.filter(company),
                "domain": domain.filter(company),
                "hubspot_owner_id": _arrow_strings(owners.account_hubspot[company]),
            }
        ),
        "salesforce_accounts": pa.table(
            {
                "Id": _arrow_strings(ids.salesforce_account[account]),
                "Name": name.filter(account),
                "Website": domain.filter(account),
                "OwnerId": _arrow_strings(owners.account_salesforce[account]),
            }
        ),
        "salesforce_leads": pa.table(
            {
                "Id": _arrow_strings(ids.salesforce_lead[lead]),
                "FirstName": first.filter(lead),
                "LastName": last.filter(lead),
                "Company": name.take(contact_account[lead]),
                "Email": email.filter(lead),
                "Status": statuses.take(status[lead]),
                "IsConverted": pa.array(ids.converted[lead]),
                "ConvertedContactId": _arrow_strings(np.where(ids.converted, ids.salesforce_contact, NO_ID)[lead]),
                "ConvertedAccountId": _arrow_strings(converted_account[lead]),
                "OwnerId": _arrow_strings(owners.contact_salesforce[lead]),
            }
        ),
        "salesforce_contacts": pa.table(
            {
                "Id": _arrow_strings(ids.salesforce_contact[contact]),
                "FirstName": first.filter(contact),
                "LastName": last.filter(contact),
                "Email": email.filter(contact),
                "AccountId": _arrow_strings(ids.salesforce_account[contact_account[contact]]),
                "OwnerId": _arrow_strings(owners.contact_salesforce[contact]),
            }
        ),
    }


@dataclass(frozen=True)
class _OwnerIds:
    """The CRM ids of each rep, and of the owner of each raw account and contact row (NO_ID: none there)."""

    hubspot: np.ndarray  # per rep
    salesforce: np.ndarray  # per rep
    account_hubspot: np.ndarray
    account_salesforce: np.ndarray
    contact_hubspot: np.ndarray
    contact_salesforce: np.ndarray


def owner_ids(rng: np.random.Generator, owners: Owners) -> _OwnerIds:
    """Reps' HubSpot owner ids (8 digits) and Salesforce User ids, and each record's owner's. An owner
    number beyond the reps (a deleted user) has no id in either CRM."""
    n_reps = len(owners.reps)
    in_hubspot = rng.random(n_reps) < REP_IN_HUBSPOT_RATE
    in_salesforce = rng.random(n_reps) < REP_IN_SALESFORCE_RATE
    hubspot = _scatter(in_hubspot, hubspot_ids(rng, int(in_hubspot.sum()), 8))
    salesforce = _scatter(in_salesforce, _new_salesforce_records(rng, "User", int(in_salesforce.sum())))

    def of(owner: np.ndarray, ids: np.ndarray) -> np.ndarray:
        # index 0 (no owner) and numbers past the reps (deleted users) map to NO_ID
        padded = np.concatenate([[NO_ID], ids]).astype(ids.dtype)
        return np.where(owner <= n_reps, padded[np.minimum(owner, n_reps)], NO_ID).astype(ids.dtype)

    return _OwnerIds(
        hubspot=hubspot,
        salesforce=salesforce,
        account_hubspot=of(owners.account_owner, hubspot),
        account_salesforce=of(owners.account_owner, salesforce),
        contact_hubspot=of(owners.contact_owner, hubspot),
        contact_salesforce=of(owners.contact_owner, salesforce),
    )


def crm_users_records(owners: Owners, ids: _OwnerIds) -> dict[str, pa.Table]:
    """The reps as each CRM holds them: HubSpot owners (archived once deactivated), Salesforce Users."""
    reps = owners.reps
    first, last = reps["full_name"].str.split(" ", n=1, expand=True).to_numpy().T
    in_hubspot, in_salesforce = ids.hubspot != NO_ID, ids.salesforce != NO_ID
    active = reps["is_active"].to_numpy()
    email = pa.array(reps["email"])
    return {
        "hubspot_owners": pa.table(
            {
                "id": _arrow_strings(ids.hubspot[in_hubspot]),
                "email": email.filter(in_hubspot),
                "firstName": pa.array(first[in_hubspot].astype(str)),
                "lastName": pa.array(last[in_hubspot].astype(str)),
                "userId": pa.array((reps["user_num"].to_numpy()[in_hubspot] + 9_000_000).astype(str)),
                "archived": pa.array(~active[in_hubspot]),
            }
        ),
        "salesforce_users": pa.table(
            {
                "Id": _arrow_strings(ids.salesforce[in_salesforce]),
                "FirstName": pa.array(first[in_salesforce].astype(str)),
                "LastName": pa.array(last[in_salesforce].astype(str)),
                "Email": email.filter(in_salesforce),
                "IsActive": pa.array(active[in_salesforce]),
            }
        ),
    }


def crm_export(rng: np.random.Generator, identity: _CrmIdentity) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The id columns the ELT tool exports for the raw accounts and contacts, dirt included."""
    lagging = rng.random(len(identity.hubspot_contact)) < EXPORT_HUBSPOT_ID_LAG_RATE
    accounts = pd.DataFrame(
        {
            "hubspot_company_id": _id_series(identity.hubspot_company),
            "salesforce_account_id": _id_series(exported_salesforce_ids(rng, identity.salesforce_account)),
        }
    )
    contacts = pd.DataFrame(
        {
            # Not yet resolved by the ELT tool: the contact exists, and is found by e-mail.
            "hubspot_contact_id": _id_series(np.where(lagging, NO_ID, identity.hubspot_contact)),
            "salesforce_lead_id": _id_series(exported_salesforce_ids(rng, identity.salesforce_lead)),
            "salesforce_contact_id": _id_series(exported_salesforce_ids(rng, identity.salesforce_contact)),
        }
    )
    return accounts, contacts


@dataclass
class _Crm:
    """The company's CRM: its records (schema ``synthetic_crm``) and the id columns of the raw export."""

    account_ids: pd.DataFrame
    contact_ids: pd.DataFrame
    tables: dict[str, pa.Table]
    users: pd.DataFrame  # raw.crm_users, integer-keyed


@dataclass
class _Accounts:
    frame: pd.DataFrame
    fit: np.ndarray
    is_test: np.ndarray
    employee_band: np.ndarray
    created_day: np.ndarray


@dataclass
class _Leads:
    """Hidden and observable state of every lead (index = lead number, ids are 1-based)."""

    account: np.ndarray
    created_day: np.ndarray
    fit: np.ndarray
    intent: np.ndarray
    evaluation_start: np.ndarray
    in_market: np.ndarray
    p_convert: np.ndarray
    converts: np.ndarray
    conversion_day: np.ndarray
    consent: np.ndarray


@dataclass(frozen=True)
class _Usage:
    """raw.product_usage before it becomes frames: one entry per user and active day, ascending, in narrow
    integer dtypes. As one frame of int64 and timestamp columns it took GBs at the bench scale."""

    user: np.ndarray  # user index (0-based)
    day: np.ndarray  # day of activity, days since the start of history
    sessions: np.ndarray
    feature_events: np.ndarray
    user_account: np.ndarray  # account index of each user

    def __len__(self) -> int:
        return len(self.user)


def _usage_days(
    rng: np.random.Generator, active_from: np.ndarray, span: np.ndarray, days_active: np.ndarray, per_chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's distinct active days (user index, day; ascending): ``days_active`` uniform draws over the
    user's active span, floored to days, repeats dropped.

    Drawn for a run of users at a time (about ``per_chunk`` draws): the uniforms come off ``rng`` in the
    order one draw for every user would take them, and users are disjoint, so the days are the same as
    drawing all at once, without tens of millions of float64 and int64 intermediates.
    """
    users, days = [], []
    for lo, hi in _runs(days_active, per_chunk):
        owner = lo + _expand(days_active[lo:hi])[0]
        day = np.floor(active_from[owner] + rng.uniform(0, 1, len(owner)) * span[owner])
        key = np.unique(owner * 100_000 + day.astype(np.int64))
        users.append(_narrow(key // 100_000))
        days.append(_narrow(key % 100_000))
    if not users:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(users), np.concatenate(days)


class SyntheticCompany:
    """Generates every raw table for one configuration. Use :func:`load_synthetic` to land them."""

    def __init__(self, config: SyntheticConfig):
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.horizon = float(config.history_days)
        # Data is extracted at the start of the day after end_date: nothing later can exist.
        self.origin = np.datetime64(config.start_date, "s")
        self.extracted_day = self.horizon + 1.0

    # -- helpers ---------------------------------------------------------------------------------
    def ts(self, days: np.ndarray) -> np.ndarray:
        """Days since the start of history -> datetime64[s] (NaN -> NaT)."""
        days = np.asarray(days, dtype=float)
        out = self.origin + (np.nan_to_num(days) * SECONDS_PER_DAY).astype("timedelta64[s]")
        return np.where(np.isnan(days), np.datetime64("NaT"), out)

    def loaded_after(self, day: np.ndarray, late_rate: float = 0.03) -> np.ndarray:
        """When the ELT tool picked a row up: minutes to hours later, days later for a few rows."""
        lag = self.rng.uniform(0.01, 0.5, len(day))
        late = self.rng.random(len(day)) < late_rate
        lag[late] = self.rng.uniform(1.0, 10.0, late.sum())
        return day + lag

    # -- accounts and leads ----------------------------------------------------------------------
    def accounts(self) -> _Accounts:
        rng, n = self.rng, self.config.n_accounts
        industry = rng.choice(len(INDUSTRIES), n, p=INDUSTRY_WEIGHTS / INDUSTRY_WEIGHTS.sum())
        band = rng.choice(len(EMPLOYEE_BANDS), n, p=EMPLOYEE_WEIGHTS / EMPLOYEE_WEIGHTS.sum())
        country = rng.choice(len(COUNTRIES), n, p=COUNTRY_WEIGHTS / COUNTRY_WEIGHTS.sum())
        revenue = np.clip(band - 1 + rng.integers(0, 3, n), 0, len(REVENUE_BANDS) - 1)
        fit = INDUSTRY_FIT[industry] + EMPLOYEE_FIT[band] + COUNTRY_FIT[country] + rng.normal(0, 0.5, n)
        created = rng.uniform(-365.0, self.horizon - 30.0, n)
        is_test = np.arange(n) % 200 == 199  # 0.5% test accounts, at least one from 200 accounts on
        ids = np.arange(1, n + 1)
        words_a = np.array(
            [
                "North",
                "Blue",
                "Bright",
                "Iron",
                "Silver",
                "Rapid",
                "Clear",
                "Summit",
                "Green",
                "Atlas",
                "Nova",
                "Prime",
                "Quantum",
                "Harbor",
                "Cedar",
                "Vector",
            ]
        )
        words_b = np.array(
            [
                "Labs",
                "Systems",
                "Analytics",
                "Works",
                "Group",
                "Logistics",
                "Health",
                "Capital",
                "Retail",
                "Media",
                "Software",
                "Partners",
                "Dynamics",
                "Cloud",
            ]
        )
        a, b = words_a[rng.integers(0, len(words_a), n)], words_b[rng.integers(0, len(words_b), n)]
        name = pd.Series(a).str.cat(pd.Series(b), sep=" ").str.cat(pd.Series(ids.astype(str)), sep=" ")
        domain = name.str.lower().str.replace(" ", "-", regex=False) + ".com"
        name = name.where(~is_test, "Test Account " + pd.Series(ids.astype(str)))
        domain = domain.where(~is_test, "example.com")
        frame = pd.DataFrame(
            {
                "account_num": ids,
                "account_name": name,
                "domain": domain,
                "industry": _messy_case(rng, INDUSTRIES[industry], 0.2),
                "employee_band": EMPLOYEE_BANDS[band],
                "country": np.where(rng.random(n) < 0.1, np.char.lower(COUNTRIES[country]), COUNTRIES[country]),
                "revenue_band": REVENUE_BANDS[revenue],
                "founded_year": rng.integers(1950, 2024, n),  # pure noise
                "created_at": self.ts(created),
                "_loaded_at": self.ts(np.minimum(self.loaded_after(np.maximum(created, 0.0)), self.extracted_day)),
            }
        )
        return _Accounts(frame, fit, is_test, band, created)

    def leads(self, accounts: _Accounts) -> tuple[_Leads, pd.DataFrame]:
        rng, cfg = self.rng, self.config
        per_account = 1 + rng.poisson(cfg.leads_per_account - 1.0, cfg.n_accounts)
        account = np.repeat(np.arange(cfg.n_accounts), per_account)
        n = len(account)
        # Lead volume grows ~40% over the history, as a growing company's does.
        # Each lead appears between its account's creation and the end of history.
        u = rng.random(n)
        growth = (np.sqrt(1 + 2.4 * u) - 1) / (np.sqrt(3.4) - 1)
        earliest = accounts.created_day[account].clip(min=0.0)
        created = np.minimum(earliest + growth * (self.horizon - earliest), self.horizon - 0.01)
        title = rng.choice(len(TITLES), n, p=TITLE_WEIGHTS / TITLE_WEIGHTS.sum())
        source = rng.choice(len(LEAD_SOURCES), n, p=LEAD_SOURCE_WEIGHTS / LEAD_SOURCE_WEIGHTS.sum())
        fit = accounts.fit[account] + TITLE_FIT[title] + rng.normal(0, 0.3, n)
        intent = LEAD_SOURCE_INTENT[source] + rng.normal(0, 1.0, n)
        evaluation_start = created + rng.exponential(cfg.evaluation_delay_mean_days, n)
        # Only in-market leads evaluate (and so can buy); the keener the lead, the likelier.
        in_market = rng.random(n) < sigmoid(cfg.in_market_intercept + cfg.in_market_intent_weight * intent)
        logit = (
            cfg.intercept + cfg.fit_weight * fit + cfg.intent_weight * intent + cfg.interaction_weight * fit * intent
        )
        p_convert = np.where(accounts.is_test[account] | ~in_market, 0.0, sigmoid(logit))
        converts = rng.random(n) < p_convert
        conversion_day = np.where(
            converts,
            evaluation_start + rng.uniform(cfg.conversion_delay_min_days, cfg.conversion_delay_max_days, n),
            np.nan,
        )
        consent = rng.random(n) < 0.86
        state = _Leads(
            account, created, fit, intent, evaluation_start, in_market, p_convert, converts, conversion_day, consent
        )

        ids = np.arange(1, n + 1)
        first = np.array(
            [
                "anna",
                "ben",
                "carla",
                "david",
                "elif",
                "farid",
                "grace",
                "hugo",
                "ines",
                "jonas",
                "kira",
                "liam",
                "maya",
                "noah",
                "olga",
                "pavel",
                "quinn",
                "rosa",
                "sam",
                "tara",
            ]
        )
        last = np.array(
            [
                "smith",
                "garcia",
                "müller",
                "chen",
                "kowalski",
                "dubois",
                "jensen",
                "rossi",
                "tanaka",
                "silva",
                "novak",
                "okafor",
                "patel",
                "berg",
                "haddad",
                "walsh",
            ]
        )
        fn, ln = first[rng.integers(0, len(first), n)], last[rng.integers(0, len(last), n)]
        domain = accounts.frame["domain"].to_numpy()[account]
        local = pd.Series(fn).str.cat(pd.Series(ln), sep=".").str.cat(pd.Series(ids.astype(str)))
        email = local.str.cat(pd.Series(domain), sep="@")
        upper = rng.random(n) < 0.08
        email = email.where(~upper, email.str.upper())
        malformed = rng.random(n) < 0.005
        broken = pd.Series(np.where(rng.random(n) < 0.5, local + " at " + domain, local + "@@" + domain))
        email = email.where(~malformed, broken)
        title_text = _messy_case(rng, TITLE_TEXT[title], 0.1)
        title_text[rng.random(n) < 0.08] = None
        frame = pd.DataFrame(
            {
                "contact_num": ids,
                "account_num": account + 1,
                "email": email,
                "first_name": pd.Series(fn).str.title(),
                "last_name": pd.Series(ln).str.title(),
                "title": title_text,
                "lead_source": LEAD_SOURCES[source],
                "utm_campaign": np.char.add("cmp-", rng.integers(100, 160, n).astype(str)),  # noise
                "marketing_consent": consent,
                "created_at": self.ts(created),
                "_loaded_at": self.ts(np.minimum(self.loaded_after(created), self.extracted_day)),
            }
        )
        # Duplicates: the same person created again days later, email in another casing.
        dup = np.flatnonzero((rng.random(n) < 0.02) & ~malformed)
        dups = frame.iloc[dup].copy()
        dups["contact_num"] = np.arange(n + 1, n + 1 + len(dup))
        dups["email"] = dups["email"].str.swapcase()
        dup_created = np.minimum(created[dup] + rng.uniform(0.5, 30, len(dup)), self.horizon)
        dups["created_at"] = self.ts(dup_created)
        dups["_loaded_at"] = self.ts(np.minimum(dup_created + 0.2, self.extracted_day))
        self.duplicate_of = pd.Series(dup, index=dups["contact_num"].to_numpy())  # dup id -> lead index
        self.malformed_email = malformed  # per lead: the CRMs refuse such an address
        return state, pd.concat([frame, dups], ignore_index=True)

    # -- marketing events ------------------------------------------------------------------------
    def marketing_events(self, leads: _Leads, lo: int, hi: int, first_event_id: int) -> pd.DataFrame:
        """Events of leads [lo, hi). Behaviour depends on hidden fit/intent/evaluation start only."""
        rng, cfg = self.rng, self.config
        idx = np.arange(lo, hi)
        created, start = leads.created_day[idx], leads.evaluation_start[idx]
        fit, intent, in_market = leads.fit[idx], leads.intent[idx], leads.in_market[idx]
        life_end = np.minimum(created + 365.0, self.horizon)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # lead, day, type, path

        def evaluating(day: np.ndarray, owner: np.ndarray) -> np.ndarray:
            return in_market[owner] & (day >= start[owner]) & (day < start[owner] + cfg.evaluation_window_days)

        # A weekly newsletter for 6 months to consented leads; opens/clicks rise with intent
        # while the lead is evaluating.
        n_sends = np.where(leads.consent[idx], np.floor((np.minimum(life_end, created + 180) - created) / 7), 0)
        owner, k = _expand(np.maximum(n_sends, 0))
        send_day = created[owner] + 7.0 * k + rng.uniform(0.2, 0.6, len(owner))
        ev = evaluating(send_day, owner)
        p_open = sigmoid(-1.5 + 0.3 * fit[owner] + ev * (0.8 + 0.5 * intent[owner]))
        opened = rng.random(len(owner)) < p_open
        clicked = opened & (rng.random(len(owner)) < sigmoid(-1.8 + ev * (0.9 + 0.4 * intent[owner])))
        none_path = np.full(len(owner), -1, dtype=np.int16)
        parts.append((owner, send_day, np.zeros(len(owner), np.int8), none_path))
        open_day = send_day + rng.exponential(0.5, len(owner))
        parts.append((owner[opened], open_day[opened], np.full(opened.sum(), 1, np.int8), none_path[opened]))
        click_day = open_day + rng.exponential(0.05, len(owner))
        parts.append(
            (
                owner[clicked],
                click_day[clicked],
                np.full(clicked.sum(), 2, np.int8),
                _sample_paths(rng, EVALUATION_MIX, clicked.sum()),
            )
        )

        # Background browsing: a per-lead habit (pure noise: some people just read the blog).
        habit = rng.lognormal(-4.0, 1.0, len(idx))
        owner, _ = _expand(rng.poisson(habit * (life_end - created)))
        day = rng.uniform(created[owner], life_end[owner])
        parts.append((owner, day, np.full(len(owner), 3, np.int8), _sample_paths(rng, BACKGROUND_MIX, len(owner))))

        # Evaluation burst: pricing, docs and case studies, more with intent, amplified by fit. Leads
        # that are not in market only take a brief look.
        burst = rng.poisson(np.where(in_market, 7.0 * np.exp(np.clip(0.4 * intent + 0.25 * fit, -3, 2.5)), 1.0))
        owner, _ = _expand(burst)
        day = start[owner] + cfg.evaluation_window_days * rng.beta(1.3, 2.2, len(owner))
        parts.append((owner, day, np.full(len(owner), 3, np.int8), _sample_paths(rng, EVALUATION_MIX, len(owner))))

        # Demo requests and webinars.
        demo = in_market & (rng.random(len(idx)) < sigmoid(-2.4 + 0.8 * intent + 0.5 * fit))
        owner = np.flatnonzero(demo)
        parts.append(
            (
                owner,
                start[owner] + rng.uniform(3, 45, len(owner)),
                np.full(len(owner), 4, np.int8),
                np.full(len(owner), PAGE_PATHS.index("/demo"), np.int16),
            )
        )
        webinar = rng.random(len(idx)) < sigmoid(-2.6 + 0.8 * intent)
        owner = np.flatnonzero(webinar)
        parts.append(
            (
                owner,
                start[owner] + rng.uniform(0, 60, len(owner)),
                np.full(len(owner), 5, np.int8),
                np.full(len(owner), -1, np.int16),
            )
        )

        lead = np.concatenate([p[0] for p in parts]) + lo
        day = np.concatenate([p[1] for p in parts])
        etype = np.concatenate([p[2] for p in parts])
        path = np.concatenate([p[3] for p in parts])
        loaded = self.loaded_after(day)
        keep = loaded <= self.extracted_day  # not yet arrived at extraction time
        lead, day, etype, path, loaded = lead[keep], day[keep], etype[keep], path[keep], loaded[keep]

        # Dirt: unknown event types; timestamps after extraction (clock skew).
        bad_type = rng.random(len(day)) < 0.0002
        etype[bad_type] = rng.choice(BAD_EVENT_TYPE_CODES, bad_type.sum())
        future = rng.random(len(day)) < 0.0002
        day[future] = loaded[future] + rng.uniform(1, 400, future.sum())

        # Some activity of duplicated contacts is logged against the duplicate id.
        contact_num = lead.astype(np.int64) + 1
        dup_of = self.duplicate_of
        in_chunk = dup_of[(dup_of >= lo) & (dup_of < hi)]
        if len(in_chunk):
            dup_for_lead = pd.Series(in_chunk.index.to_numpy(), index=in_chunk.to_numpy())
            dup_for_lead = dup_for_lead[~dup_for_lead.index.duplicated()]
            mapped = dup_for_lead.reindex(lead).to_numpy()
            move = ~np.isnan(mapped) & (rng.random(len(lead)) < 0.2)
            contact_num[move] = mapped[move].astype(np.int64)

        return pd.DataFrame(
            {
                "event_id": np.arange(first_event_id, first_event_id + len(day), dtype=np.int64),
                "contact_num": contact_num,
                "event_code": etype,
                "path_code": path,
                "occurred_at": self.ts(day),
                "_loaded_at": self.ts(loaded),
            }
        )

    # -- sales, billing and product --------------------------------------------------------------
    def revenue(self, accounts: _Accounts, leads: _Leads) -> tuple[dict[str, pd.DataFrame], _Usage]:
        """Opportunities, stage history, subscriptions, invoices, payments, product users and workspaces (as
        frames), and product usage (compact: :meth:`usage_frames` turns it into frames, chunk by chunk)."""
        rng, horizon = self.rng, self.horizon
        n_leads = len(leads.account)
        conv = np.flatnonzero(leads.converts & (leads.conversion_day - 30 < horizon))
        won_day = leads.conversion_day[conv]
        opened_day = np.maximum(leads.evaluation_start[conv], won_day - rng.uniform(15, 45, len(conv)))
        # A few evaluating non-buyers get an opportunity that is later lost.
        loser = np.flatnonzero(
            ~leads.converts
            & leads.in_market
            & (rng.random(n_leads) < sigmoid(-2.0 + 0.8 * leads.intent))
            & (leads.evaluation_start < horizon - 10)
        )
        lost_open = leads.evaluation_start[loser] + rng.uniform(10, 50, len(loser))
        lost_close = lost_open + rng.uniform(20, 80, len(loser))
        opp_lead = np.concatenate([conv, loser])
        opp_open = np.concatenate([opened_day, lost_open])
        opp_close = np.concatenate([won_day, lost_close])
        opp_won = np.concatenate([np.ones(len(conv), bool), np.zeros(len(loser), bool)])
        keep = opp_open <= horizon
        opp_lead, opp_open, opp_close, opp_won = (
            opp_lead[keep],
            opp_open[keep],
            opp_close[keep],
            opp_won[keep],
        )
        closed = opp_close <= horizon
        n_opp = len(opp_lead)
        account = leads.account[opp_lead]
        band = accounts.employee_band[account]
        plan = np.clip((band >= 2).astype(int) + (band >= 4).astype(int) + rng.choice([-1, 0, 0, 0, 0, 1], n_opp), 0, 2)
        seats = np.maximum(1, np.round(rng.lognormal(np.log([3, 6, 15, 40, 90, 150])[band], 0.5))).astype(int)
        annual = rng.random(n_opp) < 0.35
        mrr = np.round(seats * PLAN_PRICE_PER_SEAT[plan] * np.where(annual, 0.85, 1.0), 2)
        progress = np.clip((horizon - opp_open) / np.maximum(opp_close - opp_open, 1), 0, 0.999)
        stage_now = np.where(closed, np.where(opp_won, 4, 5), np.floor(progress * 4).astype(int))
        opp_num = np.arange(1, n_opp + 1)
        opportunities = pd.DataFrame(
            {
                "opportunity_num": opp_num,
                "account_num": account + 1,
                "contact_num": opp_lead + 1,
                "amount": np.round(mrr * 12, 2),
                "stage": np.array(STAGES)[stage_now],
                "created_at": self.ts(opp_open),
                "closed_at": self.ts(np.where(closed, opp_close, np.nan)),
                "is_won": pd.array(np.where(closed, opp_won, False), dtype="boolean").copy(),
                "_loaded_at": self.ts(np.minimum(np.where(closed, opp_close, opp_open) + 0.3, self.extracted_day)),
            }
        )
        opportunities.loc[~closed, "is_won"] = pd.NA
        # Stage history: each open stage at an even share of the way, then the close.
        owner, k = _expand(np.where(closed, 5, stage_now + 1))
        span = opp_close[owner] - opp_open[owner]
        entered = np.where(k < 4, opp_open[owner] + span * k / 4.0, opp_close[owner])
        hist_stage = np.where(k < 4, k, np.where(opp_won[owner], 4, 5))
        stage_history = pd.DataFrame(
            {
                "opportunity_num": owner + 1,
                "stage": np.array(STAGES)[hist_stage],
                "entered_at": self.ts(entered),
                "_loaded_at": self.ts(np.minimum(entered + 0.3, self.extracted_day)),
            }
        )

        # Subscriptions from won and closed opportunities; churn monthly or at an annual renewal.
        won = np.flatnonzero(closed & opp_won)
        start = opp_close[won]
        monthly_life = rng.exponential(36 * 30.4, len(won))
        annual_life = 365.0 * rng.geometric(0.15, len(won))
        end = start + np.where(annual[won], annual_life, monthly_life)
        end = np.where(end <= horizon, end, np.nan)
        sub_num = np.arange(1, len(won) + 1)
        subscriptions = pd.DataFrame(
            {
                "subscription_num": sub_num,
                "account_num": account[won] + 1,
                "opportunity_num": opp_num[won],
                "plan": PLANS[plan[won]],
                "seats": seats[won],
                "mrr": mrr[won],
                "billing_interval": np.where(annual[won], "annual", "monthly"),
                "started_at": self.ts(start),
                "cancelled_at": self.ts(end),
                "_loaded_at": self.ts(np.minimum(np.where(np.isnan(end), start, end) + 0.2, self.extracted_day)),
            }
        )
        # Invoices: in advance at each period start while active; payment within 0-20 days (3% never).
        period = np.where(annual[won], 365.0, 365.0 / 12)
        active_until = np.where(np.isnan(end), horizon, end)
        owner, k = _expand(np.ceil((active_until - start) / period).clip(min=1))
        issued = start[owner] + k * period[owner]
        amount = np.round(mrr[won][owner] * np.where(annual[won][owner], 12, 1), 2)
        pay_day = issued + rng.uniform(0, 20, len(owner))
        paid = (rng.random(len(owner)) > 0.03) & (pay_day <= horizon)
        void = ~paid & (rng.random(len(owner)) < 0.2)
        negative = ~paid & (rng.random(len(owner)) < 0.25)  # dirt: a sign flipped by hand on an unpaid invoice
        invoices = pd.DataFrame(
            {
                "invoice_num": np.arange(1, len(owner) + 1),
                "account_num": account[won][owner] + 1,
                "subscription_num": sub_num[owner],
                "amount": np.where(negative, -amount, amount),
                "currency": "USD",
                "status": np.where(paid, "paid", np.where(void, "void", "open")),
                "issued_at": self.ts(issued),
                "_loaded_at": self.ts(np.minimum(issued + 0.2, self.extracted_day)),
            }
        )
        paid_idx = np.flatnonzero(paid)
        payments = pd.DataFrame(
            {
                "payment_num": np.arange(1, len(paid_idx) + 1),
                "invoice_num": paid_idx + 1,
                "amount": amount[paid_idx],
                "paid_at": self.ts(pay_day[paid_idx]),
                "_loaded_at": self.ts(np.minimum(pay_day[paid_idx] + 0.2, self.extracted_day)),
            }
        )
        product, usage = self.product(leads, won_lead=opp_lead[won], won_start=start, won_end=end, won_seats=seats[won])
        frames = {
            "opportunities": opportunities,
            "opportunity_stage_history": stage_history,
            "subscriptions": subscriptions,
            "invoices": invoices,
            "payments": payments,
            **product,
        }
        return frames, usage

    def product(
        self,
        leads: _Leads,
        won_lead: np.ndarray,
        won_start: np.ndarray,
        won_end: np.ndarray,
        won_seats: np.ndarray,
    ) -> tuple[dict[str, pd.DataFrame], _Usage]:
        """Trials (driven by intent and fit, never by the outcome) and customers' ongoing use: product users
        and workspaces as frames, daily usage compact."""
        rng, horizon = self.rng, self.horizon
        n_leads = len(leads.account)
        trial = np.flatnonzero(
            (
                rng.random(n_leads)
                < np.where(leads.in_market, sigmoid(-1.0 + 0.6 * leads.intent + 0.4 * leads.fit), 0.02)
            )
            & (leads.evaluation_start < horizon - 2)
        )
        trial_start = leads.evaluation_start[trial] + rng.uniform(2, 20, len(trial))
        keep = trial_start <= horizon
        trial, trial_start = trial[keep], trial_start[keep]
        invited = rng.poisson(1.2 * np.exp(np.clip(0.3 * leads.fit[trial], -2, 2)))
        # Users: the trialist plus invitees; customers get up to 8 users at subscription start.
        t_owner, t_k = _expand(1 + invited)
        t_user_day = trial_start[t_owner] + np.where(t_k == 0, 0.0, rng.uniform(0, 14, len(t_owner)))
        c_users = np.minimum(won_seats, 8)
        c_owner, _ = _expand(c_users)
        c_user_day = won_start[c_owner] + rng.uniform(0, 10, len(c_owner))
        user_account = np.concatenate([leads.account[trial][t_owner], leads.account[won_lead][c_owner]])
        user_day = np.concatenate([t_user_day, c_user_day])
        user_active_from = user_day
        user_active_to = np.concatenate(
            [
                trial_start[t_owner] + 30.0,
                np.where(np.isnan(won_end[c_owner]), horizon, won_end[c_owner]),
            ]
        )
        user_rate = np.concatenate(
            [
                np.clip(0.2 * np.exp(0.4 * leads.intent[trial][t_owner] + 0.2 * leads.fit[trial][t_owner]), 0, 0.9),
                np.full(len(c_owner), 0.12),
            ]
        )
        keep_user = user_day <= horizon
        user_account, user_day = user_account[keep_user], user_day[keep_user]
        user_active_from, user_active_to, user_rate = (
            user_active_from[keep_user],
            np.minimum(user_active_to[keep_user], horizon),
            user_rate[keep_user],
        )
        n_users = len(user_day)
        users = pd.DataFrame(
            {
                "user_num": np.arange(1, n_users + 1),
                "account_num": user_account + 1,
                "invited_at": self.ts(user_day),
                "_loaded_at": self.ts(np.minimum(user_day + 0.2, self.extracted_day)),
            }
        )
        # Workspaces: the trialist creates one, keen trialists more; customers one per subscription.
        w_count = 1 + rng.poisson(0.4 * np.exp(np.clip(0.5 * leads.intent[trial], -2, 2)))
        w_owner, _ = _expand(w_count)
        w_day = np.concatenate([trial_start[w_owner] + rng.uniform(0, 20, len(w_owner)), won_start + 1.0])
        w_account = np.concatenate([leads.account[trial][w_owner], leads.account[won_lead]])
        keep_w = w_day <= horizon
        first_user_of_trial = np.cumsum(1 + invited) - (1 + invited)  # index of each trial's creator
        creator = np.concatenate([first_user_of_trial[w_owner], np.full(len(won_lead), -1)])[keep_w]
        workspaces = pd.DataFrame(
            {
                "workspace_num": np.arange(1, keep_w.sum() + 1),
                "account_num": w_account[keep_w] + 1,
                "created_by_user_num": np.where(creator >= 0, creator + 1, -1),
                "created_at": self.ts(w_day[keep_w]),
                "_loaded_at": self.ts(np.minimum(w_day[keep_w] + 0.2, self.extracted_day)),
            }
        )
        # Daily usage: active days drawn per user over their active span, one row per user-day.
        span = np.maximum(user_active_to - user_active_from, 0)
        days_active = np.minimum(rng.poisson(user_rate * span), np.floor(span).astype(int))
        per_chunk = USAGE_ROWS_PER_CHUNK
        usage_user, usage_day = _usage_days(rng, user_active_from, span, days_active, per_chunk)
        # All sessions, then all feature events: the order of the draws, whatever the chunks.
        sessions = _draw_in_chunks(lambda k: 1 + rng.poisson(1.5, k), len(usage_user), per_chunk)
        feature_events = _draw_in_chunks(lambda k: rng.poisson(4.0, k), len(usage_user), per_chunk)
        usage = _Usage(usage_user, usage_day, sessions, feature_events, user_account)
        return {"product_users": users, "workspaces": workspaces}, usage

    def usage_frames(self, usage: _Usage) -> Iterator[pd.DataFrame]:
        """raw.product_usage as integer-keyed frames of at most ``USAGE_ROWS_PER_CHUNK`` rows (no draws), so
        that only one chunk's int64 and timestamp columns exist at a time."""
        per_chunk = USAGE_ROWS_PER_CHUNK
        for lo in range(0, len(usage), per_chunk):
            rows = slice(lo, lo + per_chunk)
            user, day = usage.user[rows].astype(np.int64), usage.day[rows].astype(float)
            yield pd.DataFrame(
                {
                    "user_num": user + 1,
                    "account_num": usage.user_account[user] + 1,
                    "usage_date": self.ts(day),
                    "sessions": usage.sessions[rows],
                    "feature_events": usage.feature_events[rows],
                    "_loaded_at": self.ts(np.minimum(day + 1.2, self.extracted_day)),
                }
            )

    # -- the CRM ---------------------------------------------------------------------------------
    def crm(self, accounts: _Accounts, leads: _Leads, contacts: pd.DataFrame, opportunities: pd.DataFrame) -> _Crm:
        """The company's CRM (who is which HubSpot and Salesforce record) and the ids its export carries.

        Draws come from a random stream of their own, seeded by the seed: the same seed gives the same
        CRM, and the CRM never shifts the data the model learns from.
        """
        rng = np.random.default_rng([self.config.seed, CRM_STREAM])
        duplicate_of = self.duplicate_of.to_numpy()
        identity = crm_identity(rng, leads.account, leads.consent, duplicate_of, opportunities, len(accounts.frame))
        contact_account = np.concatenate([leads.account, leads.account[duplicate_of]])
        malformed = np.concatenate([self.malformed_email, np.zeros(len(duplicate_of), bool)])
        owner_rng = np.random.default_rng([self.config.seed, OWNER_STREAM])
        owners = make_owners(owner_rng, accounts.frame["country"].to_numpy(), contact_account, self.horizon)
        ids = owner_ids(owner_rng, owners)
        tables = crm_records(rng, identity, accounts.frame, contacts, contact_account, malformed, ids)
        tables.update(crm_users_records(owners, ids))
        account_ids, contact_ids = crm_export(rng, identity)
        account_ids["owner_num"] = owners.account_owner
        contact_ids["owner_num"] = owners.contact_owner
        return _Crm(account_ids, contact_ids, tables, self.users_export(owner_rng, owners, ids))

    def users_export(self, rng: np.random.Generator, owners: Owners, ids: _OwnerIds) -> pd.DataFrame:
        """raw.crm_users as the ELT tool exports it: messy casing, 15-character Salesforce ids now and then."""
        reps = owners.reps
        created = reps["created_day"].to_numpy()
        territory = reps["territory"].to_numpy().astype(str)
        return pd.DataFrame(
            {
                "user_num": reps["user_num"],
                "hubspot_owner_id": _id_series(ids.hubspot),
                "salesforce_user_id": _id_series(exported_salesforce_ids(rng, ids.salesforce)),
                "full_name": reps["full_name"],
                "email": np.where(rng.random(len(reps)) < 0.2, reps["email"].str.title(), reps["email"]),
                "team": reps["team"],
                "territory": np.where(rng.random(len(reps)) < 0.1, np.char.lower(territory), territory),
                "is_active": reps["is_active"],
                "created_at": self.ts(created),
                "_loaded_at": self.ts(np.minimum(self.loaded_after(np.maximum(created, 0.0)), self.extracted_day)),
            }
        )


# SQL that turns the integer-keyed frames into the raw contract (ids are formatted in DuckDB).
_OWNER = "CASE WHEN owner_num > 0 THEN printf('R-%04d', owner_num) END"
_SELECTS: dict[str, str] = {
    "crm_users": "printf('R-%04d', user_num), hubspot_owner_id::VARCHAR, salesforce_user_id::VARCHAR, full_name, "
    "email, team, territory, is_active, created_at, _loaded_at",
    "accounts": "printf('A-%07d', account_num), hubspot_company_id::VARCHAR, salesforce_account_id::VARCHAR, "
    f"{_OWNER}, account_name, domain, industry, employee_band, country, revenue_band, founded_year, created_at, "
    "_loaded_at",
    "contacts": "printf('L-%07d', contact_num), hubspot_contact_id::VARCHAR, salesforce_lead_id::VARCHAR, "
    f"salesforce_contact_id::VARCHAR, {_OWNER}, printf('A-%07d', account_num), email, first_name, last_name, "
    "title, lead_source, utm_campaign, marketing_consent, created_at, _loaded_at",
    "marketing_events": "event_id, printf('L-%07d', contact_num), "
    f"{[*EVENT_TYPES]}[event_code + 1], CASE WHEN path_code >= 0 THEN {[*PAGE_PATHS]}[path_code + 1] END, "
    "occurred_at, _loaded_at",
    "product_users": "printf('U-%08d', user_num), printf('A-%07d', account_num), "
    "printf('user%d@', user_num) || 'product.example', invited_at, _loaded_at",
    "workspaces": "printf('W-%07d', workspace_num), printf('A-%07d', account_num), "
    "CASE WHEN created_by_user_num > 0 THEN printf('U-%08d', created_by_user_num) END, created_at, _loaded_at",
    "product_usage": "printf('U-%08d', user_num), printf('A-%07d', account_num), usage_date::DATE, sessions, "
    "feature_events, _loaded_at",
    "opportunities": "printf('O-%07d', opportunity_num), printf('A-%07d', account_num), "
    "printf('L-%07d', contact_num), amount, stage, created_at, closed_at, is_won, _loaded_at",
    "opportunity_stage_history": "printf('O-%07d', opportunity_num), stage, entered_at, _loaded_at",
    "subscriptions": "printf('S-%07d', subscription_num), printf('A-%07d', account_num), "
    "printf('O-%07d', opportunity_num), plan, seats, mrr, billing_interval, started_at, cancelled_at, _loaded_at",
    "invoices": "printf('I-%08d', invoice_num), printf('A-%07d', account_num), printf('S-%07d', subscription_num), "
    "amount, currency, status, issued_at, _loaded_at",
    "payments": "printf('P-%08d', payment_num), printf('I-%08d', invoice_num), amount, paid_at, _loaded_at",
}


def _run_on(con: duckdb.DuckDBPyConnection, sql: str, rows: pd.DataFrame | pa.Table) -> None:
    """Run ``sql``, which reads ``rows`` as the table ``_rows``.

    DuckDB finds ``_rows`` among this function's locals (a replacement scan) and lets go of it when the
    statement ends. ``con.register`` would create a temporary view instead, and inside the load's one
    transaction DuckDB keeps a view it dropped, and the frame behind it, until the commit: every chunk of
    events and usage stayed in memory to the end (about 2 GB at the bench scale).
    """
    _rows = rows  # read by DuckDB, by name
    con.execute(sql)


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    _run_on(con, f"INSERT INTO raw.{table} SELECT {_SELECTS[table]} FROM _rows", frame)


def _insert_each(con: duckdb.DuckDBPyConnection, table: str, frames: Iterable[pd.DataFrame]) -> None:
    """Insert frames made one at a time; each is gone once inserted, before the next is made."""
    for frame in frames:
        _insert(con, table, frame)


def _event_chunks(company: SyntheticCompany, leads: _Leads) -> Iterator[pd.DataFrame]:
    n, step, next_id = len(leads.account), company.config.lead_chunk_size, 1
    for lo in range(0, n, step):
        frame = company.marketing_events(leads, lo, min(lo + step, n), next_id)
        next_id += len(frame)
        yield frame


def load_synthetic(
    con: duckdb.DuckDBPyConnection,
    config: SyntheticConfig | None = None,
    *,
    allow_shrink: Collection[str] = (),
    max_shrink: float = DEFAULT_MAX_SHRINK,
    before_commit: Sequence[Hook] = (),
) -> dict[str, int]:
    """Generate the company and replace schemas ``raw``, ``oracle`` and ``synthetic_crm`` in one transaction.

    Returns the row count of every raw table. A failure rolls everything back, so readers never see a
    half-written source; so does a raw table that would shrink more than the volume guards allow
    (:func:`ml.sources.landing.land`: regenerating a smaller company needs ``allow_shrink=["all"]``).
    """
    config = config or SyntheticConfig()
    t0 = time.perf_counter()
    company = SyntheticCompany(config)
    accounts = company.accounts()
    leads, contacts = company.leads(accounts)

    def write_tables(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        con.execute("CREATE SCHEMA IF NOT EXISTS oracle")
        for table in RAW_TABLES:
            con.execute(create_table_sql(table))
        _insert_each(con, "marketing_events", _event_chunks(company, leads))
        revenue, usage = company.revenue(accounts, leads)
        # Who was converted in Salesforce follows from the opportunities, so the CRM comes after them.
        crm = company.crm(accounts, leads, contacts, revenue["opportunities"])
        _insert(con, "accounts", pd.concat([accounts.frame, crm.account_ids], axis=1))
        _insert(con, "contacts", pd.concat([contacts, crm.contact_ids], axis=1))
        _insert(con, "crm_users", crm.users)
        for name, frame in revenue.items():
            _insert(con, name, frame)
        _insert_each(con, "product_usage", company.usage_frames(usage))
        _write_oracle(con, company, leads)
        _write_crm(con, crm.tables)

    counts = land(
        con,
        write_tables,
        source=f"the synthetic company (seed {config.seed}, {config.n_accounts:,} accounts)",
        allow_shrink=allow_shrink,
        max_shrink=max_shrink,
        before_commit=before_commit,
    )
    log.info(
        "synthetic data (seed %s, %s accounts) landed in %.1fs: %s",
        config.seed,
        config.n_accounts,
        time.perf_counter() - t0,
        counts,
    )
    return counts


def _write_crm(con: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table]) -> None:
    """Replace schema ``synthetic_crm``: the CRM's records as the CRM has them (:data:`CRM_TABLES`)."""
    con.execute(f"DROP SCHEMA IF EXISTS {CRM_SCHEMA} CASCADE")
    con.execute(f"CREATE SCHEMA {CRM_SCHEMA}")
    for name, columns in CRM_TABLES.items():
        select = ", ".join(f'CAST("{column}" AS {type_}) AS "{column}"' for column, type_ in columns)
        _run_on(con, f"CREATE TABLE {CRM_SCHEMA}.{name} AS SELECT {select} FROM _rows", tables[name])
        con.execute(
            f"COMMENT ON TABLE {CRM_SCHEMA}.{name} IS 'The synthetic company''s CRM records (canonical ids), "
            "for seeding the CRM sandbox. Never read by dbt models or features.'"
        )


def _write_oracle(con: duckdb.DuckDBPyConnection, company: SyntheticCompany, leads: _Leads) -> None:
    """The hidden truth, for evaluation only. Days are converted to timestamps for readability."""
    cfg = company.config
    truth = pd.DataFrame(
        {
            "contact_num": np.arange(1, len(leads.account) + 1),
            "fit": leads.fit,
            "intent": leads.intent,
            "in_market": leads.in_market,
            "p_convert": leads.p_convert,
            "evaluation_start": company.ts(leads.evaluation_start),
        }
    )
    _run_on(
        con,
        f"""
        CREATE OR REPLACE TABLE oracle.lead_truth AS
        SELECT printf('L-%07d', contact_num) AS contact_id, fit, intent, in_market, p_convert, evaluation_start,
               {cfg.conversion_delay_min_days}::DOUBLE AS conversion_delay_min_days,
               {cfg.conversion_delay_max_days}::DOUBLE AS conversion_delay_max_days,
               {cfg.evaluation_delay_mean_days}::DOUBLE AS evaluation_delay_mean_days
        FROM _rows
        """,
        truth,
    )
    # Duplicates share their original's hidden state.
    dup = company.duplicate_of
    con.execute(
        """
        INSERT INTO oracle.lead_truth
        SELECT printf('L-%07d', d.dup_num), t.fit, t.intent, t.in_market, t.p_convert, t.evaluation_start,
               t.conversion_delay_min_days, t.conversion_delay_max_days, t.evaluation_delay_mean_days
        FROM (SELECT unnest(?) AS dup_num, unnest(?) AS orig_num) d
        JOIN oracle.lead_truth t ON t.contact_id = printf('L-%07d', d.orig_num)
        """,
        [dup.index.to_numpy().tolist(), (dup.to_numpy() + 1).tolist()],
    )
    con.execute(
        "COMMENT ON TABLE oracle.lead_truth IS 'Hidden truth of the synthetic generator. "
        "Never read by dbt models or features; for evaluation only.'"
    )
