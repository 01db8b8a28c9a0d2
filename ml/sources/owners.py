"""The synthetic company's sales reps (the CRM's users) and who owns which account and lead.

Reps work one territory each (vars ``territories`` of the dbt project, via :mod:`ml.sources.vocabulary`), in
proportion to its accounts, at least two per territory so that routing has a choice. Ownership is as messy as
a real CRM's: some accounts and many new leads have no owner yet, a lead may be owned by another rep than its
account, some reps have left the company (inactive, their records still theirs until someone reassigns them),
and a few records name a user the export no longer contains (deleted users).

Everything is drawn from a random stream of its own, so adding owners never shifts the data the model learns
from. Owner numbers are 1-based; 0 means no owner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.sources.vocabulary import DEFAULT_TERRITORY, KNOWN_VALUES, TERRITORY_OF_COUNTRY

ACCOUNTS_PER_REP = 120
MIN_REPS_PER_TERRITORY = 2
REP_INACTIVE_RATE = 0.1  # reps who left the company; their records keep them as owner
REP_SDR_RATE = 0.35  # reps in the SDR team (the others are AEs)
REP_IN_HUBSPOT_RATE = 0.95  # reps who are HubSpot owners
REP_IN_SALESFORCE_RATE = 0.95  # reps who are Salesforce Users
ACCOUNT_UNOWNED_RATE = 0.08  # accounts nobody owns yet
LEAD_UNOWNED_RATE = 0.12  # leads nobody picked up yet (mostly new inbound)
LEAD_OTHER_OWNER_RATE = 0.08  # leads owned by another rep of the territory than their account's owner
DELETED_OWNER_RATE = 0.003  # leads whose owner was deleted from the CRM (absent from the users export)

FIRST_NAMES = np.array(
    [
        "Ana",
        "Ben",
        "Chloe",
        "Dev",
        "Elena",
        "Farid",
        "Grace",
        "Hugo",
        "Ines",
        "Jonas",
        "Keiko",
        "Liam",
        "Maya",
        "Noah",
        "Olga",
        "Pedro",
        "Quinn",
        "Rosa",
        "Sami",
        "Tara",
        "Uma",
        "Victor",
        "Wen",
        "Yusuf",
        "Zoe",
    ]
)
LAST_NAMES = np.array(
    [
        "Alvarez",
        "Brooks",
        "Chen",
        "Dubois",
        "Eriksen",
        "Fischer",
        "Garcia",
        "Haddad",
        "Ito",
        "Jansen",
        "Kowalski",
        "Lopez",
        "Moreau",
        "Nakamura",
        "Okafor",
        "Patel",
        "Rossi",
        "Silva",
        "Tanaka",
        "Novak",
        "Weber",
        "Young",
    ]
)


@dataclass(frozen=True)
class Owners:
    """The reps and the owner number of every raw account and contact row (0: none)."""

    reps: pd.DataFrame  # user_num, full_name, email, team, territory, is_active, created_day
    account_owner: np.ndarray
    contact_owner: np.ndarray


def territory_of(countries: np.ndarray) -> np.ndarray:
    """Territory of each country code (any casing), as the warehouse derives it."""
    upper = np.char.upper(np.char.strip(countries.astype(str)))
    return np.array([TERRITORY_OF_COUNTRY.get(code, DEFAULT_TERRITORY) for code in upper])


def make_owners(
    rng: np.random.Generator, account_country: np.ndarray, contact_account: np.ndarray, horizon_days: float
) -> Owners:
    """Reps per territory and the owners of ``len(account_country)`` accounts and their contact rows
    (``contact_account``: account index of each raw contact row)."""
    territories = np.array(KNOWN_VALUES["territory"])
    position = {name: i for i, name in enumerate(territories)}
    account_territory = np.array([position[t] for t in territory_of(account_country)], dtype=int)
    per_territory = np.bincount(account_territory, minlength=len(territories))
    reps_per_territory = np.maximum(MIN_REPS_PER_TERRITORY, np.rint(per_territory / ACCOUNTS_PER_REP).astype(int))
    rep_territory = np.repeat(np.arange(len(territories)), reps_per_territory)
    n_reps = len(rep_territory)
    first = FIRST_NAMES[rng.integers(0, len(FIRST_NAMES), n_reps)]
    last = LAST_NAMES[rng.integers(0, len(LAST_NAMES), n_reps)]
    user_num = np.arange(1, n_reps + 1)
    reps = pd.DataFrame(
        {
            "user_num": user_num,
            "full_name": pd.Series(first).str.cat(pd.Series(last), sep=" "),
            "email": pd.Series(np.char.lower(first)).str.cat(pd.Series(np.char.lower(last)), sep=".")
            + user_num.astype(str)
            + "@leadscore-demo.example",
            "team": np.where(rng.random(n_reps) < REP_SDR_RATE, "SDR", "AE"),
            "territory": territories[rep_territory],
            "is_active": rng.random(n_reps) >= REP_INACTIVE_RATE,
            "created_day": rng.uniform(-400.0, horizon_days * 0.5, n_reps),
        }
    )
    # Every territory keeps at least one active rep, or routing there would have nobody.
    for territory in range(len(territories)):
        members = np.flatnonzero(rep_territory == territory)
        if not reps["is_active"].to_numpy()[members].any():
            reps.loc[members[0], "is_active"] = True

    def rep_in(territory_index: np.ndarray) -> np.ndarray:
        """A random rep (1-based) of each given territory."""
        start = np.concatenate([[0], np.cumsum(reps_per_territory)])[territory_index]
        return start + (rng.random(len(territory_index)) * reps_per_territory[territory_index]).astype(int) + 1

    account_owner = np.where(rng.random(len(account_country)) < ACCOUNT_UNOWNED_RATE, 0, rep_in(account_territory))
    lead_territory = account_territory[contact_account]
    u = rng.random(len(contact_account))
    contact_owner = np.where(
        u < LEAD_UNOWNED_RATE,
        0,
        np.where(u < LEAD_UNOWNED_RATE + LEAD_OTHER_OWNER_RATE, rep_in(lead_territory), account_owner[contact_account]),
    )
    deleted = rng.random(len(contact_account)) < DELETED_OWNER_RATE
    contact_owner = np.where(deleted, n_reps + 1 + rng.integers(0, 5, len(contact_account)), contact_owner)
    return Owners(reps=reps, account_owner=account_owner, contact_owner=contact_owner)
