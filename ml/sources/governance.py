"""Erasure (GDPR Art. 17) and the suppression list that keeps erased people out of later loads.

A person who asks to be forgotten is removed from every table of the warehouse: the raw export (their
contact rows, their marketing events; the opportunities and product users they appear on lose the
reference to them but keep the company's revenue and usage), the synthetic CRM copy and the oracle, every
dbt-built table and the score history (any table with a person column: ``lead_id``, ``contact_id``,
``email`` and the CRM person ids), and activation's rejects. Activation's confirmed state for them is
*marked erased* rather than deleted: the next sync clears leadscore's fields on their CRM records and then
deletes that state (``activation/diff.py``, action ``erase``).

What stays: an audit row (``governance.erasures``: when, who asked, why, how many rows left which table —
no personal data) and the suppression list (``governance.suppressions``: salted SHA-256 digests of the
person's e-mail address and ids, never the values). Every later load checks each contact against that
list inside its transaction (:func:`apply_suppressions`, a ``before_commit`` hook of the landing step), so
an export that still contains the person does not bring them back.

The CRM itself is the company's to erase: leadscore only empties the fields it wrote.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import duckdb

SCHEMA = "governance"
# Columns that identify a person, wherever they appear in the warehouse.
PERSON_ID_COLUMNS = ("lead_id", "contact_id", "hubspot_contact_id", "salesforce_lead_id", "salesforce_contact_id")
EMAIL_COLUMNS = ("email",)
# Schemas whose tables are handled one by one (raw, the CRM copy, the oracle) or not at all (governance),
# and activation, whose state must outlive the erasure until the CRM is cleared.
SPECIAL_SCHEMAS = ("raw", "synthetic_crm", "oracle", SCHEMA, "activation")

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.settings (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS {SCHEMA}.suppressions (
    digest VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,
    erasure_id VARCHAR NOT NULL,
    added_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.erasures (
    erasure_id VARCHAR PRIMARY KEY,
    requested_at TIMESTAMP NOT NULL,
    requested_by VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    people_found INTEGER NOT NULL,
    rows_removed VARCHAR NOT NULL,
    crm_clears_pending INTEGER NOT NULL
);
"""


class ErasureError(ValueError):
    """The request cannot be carried out as asked (nothing to erase by, nobody found without --force...)."""


@dataclass
class ErasureReport:
    erasure_id: str
    people_found: int
    rows_removed: dict[str, int] = field(default_factory=dict)
    crm_clears_pending: int = 0

    def summary(self) -> str:
        removed = ", ".join(f"{table} {count}" for table, count in sorted(self.rows_removed.items()) if count)
        return (
            f"erasure {self.erasure_id}: {self.people_found} contact record(s) found; rows removed: "
            f"{removed or 'none'}; CRM records to clear at the next sync: {self.crm_clears_pending}"
        )


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


def _salt(con: duckdb.DuckDBPyConnection) -> str:
    """A random value per warehouse mixed into every digest, so the list cannot be matched against a list of
    e-mail addresses from elsewhere."""
    row = con.execute(f"SELECT value FROM {SCHEMA}.settings WHERE key = 'digest_salt'").fetchall()
    if row:
        return row[0][0]
    salt = secrets.token_hex(16)
    con.execute(f"INSERT INTO {SCHEMA}.settings VALUES ('digest_salt', ?)", [salt])
    return salt


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _digest_sql(expression: str) -> str:
    """SQL for the digest of an identifier expression (the salt is the first parameter)."""
    return f"sha256(? || coalesce(trim({expression}), ''))"


def _temp_values(con: duckdb.DuckDBPyConnection, name: str, values: Iterable[str]) -> None:
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} (value VARCHAR PRIMARY KEY)")
    rows = sorted({v for v in values if v})
    if rows:
        con.executemany(f"INSERT INTO {name} VALUES (?)", [(v,) for v in rows])


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ? "
        "AND table_type = 'BASE TABLE'",
        [schema, table],
    ).fetchall()
    return bool(rows[0][0])


def _delete(con: duckdb.DuckDBPyConnection, table: str, where: str, removed: dict[str, int]) -> None:
    count = con.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchall()[0][0]
    if count:
        con.execute(f"DELETE FROM {table} WHERE {where}")
        removed[table] = removed.get(table, 0) + count


def _null(con: duckdb.DuckDBPyConnection, table: str, column: str, where: str, removed: dict[str, int]) -> None:
    count = con.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchall()[0][0]
    if count:
        con.execute(f"UPDATE {table} SET {column} = NULL WHERE {where}")
        removed[f"{table}.{column} (emptied)"] = count


def erase(
    con: duckdb.DuckDBPyConnection,
    *,
    emails: Sequence[str] = (),
    contact_ids: Sequence[str] = (),
    requested_by: str,
    reason: str = "right to erasure (GDPR Art. 17)",
    now: dt.datetime | None = None,
) -> ErasureReport:
    """Remove people, found by e-mail address or CRM contact id, from the whole warehouse in one transaction.

    Every contact record sharing an address with one found is the same person (duplicates are merged on
    the address), so all of them go. The identifiers given are suppressed even when nobody is found today.
    """
    emails = [normalise_email(e) for e in emails if e and e.strip()]
    contact_ids = [c.strip() for c in contact_ids if c and c.strip()]
    if not emails and not contact_ids:
        raise ErasureError("name the person to erase: at least one --email or --contact-id")
    if not requested_by.strip():
        raise ErasureError("say who asked for the erasure (--requested-by): the audit keeps it")
    ensure_tables(con)
    erasure_id = uuid.uuid4().hex[:12]
    stamp = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    con.execute("BEGIN TRANSACTION")
    try:
        report = _erase(con, erasure_id, emails, contact_ids)
        con.execute(
            f"INSERT INTO {SCHEMA}.erasures VALUES (?, ?, ?, ?, ?, ?, ?)",
            [erasure_id, stamp, requested_by.strip(), reason.strip(), report.people_found,
             json.dumps(report.rows_removed, sort_keys=True), report.crm_clears_pending],
        )  # fmt: skip
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return report


def _erase(con: duckdb.DuckDBPyConnection, erasure_id: str, emails: list[str], contact_ids: list[str]) -> ErasureReport:
    _temp_values(con, "_erase_emails", emails)
    _temp_values(con, "_erase_ids", contact_ids)
    people: list[tuple] = []
    if _table_exists(con, "raw", "contacts"):
        # The whole person: every contact record with a given id or address, then every record sharing an
        # address with those (the warehouse merges duplicates on the address).
        people = con.execute(
            """
            WITH hit AS (
                SELECT lower(trim(email)) AS email FROM raw.contacts
                WHERE contact_id IN (SELECT value FROM _erase_ids)
                   OR lower(trim(email)) IN (SELECT value FROM _erase_emails)
            )
            SELECT contact_id, lower(trim(email)), hubspot_contact_id, salesforce_lead_id, salesforce_contact_id
            FROM raw.contacts
            WHERE contact_id IN (SELECT value FROM _erase_ids) OR lower(trim(email)) IN (SELECT email FROM hit)
            """
        ).fetchall()
    person_ids = set(contact_ids) | {row[0] for row in people}
    person_ids |= {value for row in people for value in row[2:] if value}
    person_emails = set(emails) | {row[1] for row in people if row[1]}
    _temp_values(con, "_erase_ids", person_ids)
    _temp_values(con, "_erase_emails", person_emails)
    report = ErasureReport(erasure_id, people_found=len(people))
    removed = report.rows_removed
    _remove_from_sources(con, removed)
    ids = "(SELECT value FROM _erase_ids)"
    addresses = "(SELECT value FROM _erase_emails)"
    # Everything built from them: every table outside the special schemas with a person column.
    for schema, table, column in _person_columns(con):
        condition = f'"{column}" IN {ids}' if column in PERSON_ID_COLUMNS else f'lower(trim("{column}")) IN {addresses}'
        _delete(con, f'"{schema}"."{table}"', condition, removed)
    if _table_exists(con, "staging", "quarantine"):
        # Quarantined rows keep the raw row as JSON: any that names the person goes.
        named = (
            "EXISTS (SELECT 1 FROM (SELECT value FROM _erase_ids UNION ALL SELECT value FROM _erase_emails) AS v "
            "WHERE contains(lower(raw_row::VARCHAR), lower(v.value)))"
        )
        _delete(con, "staging.quarantine", named, removed)
    # Activation: rejects go; confirmed state is marked, so that the next sync clears the CRM fields first.
    if _table_exists(con, "activation", "rejects"):
        _delete(con, "activation.rejects", f"record_key IN {ids}", removed)
    if _table_exists(con, "activation", "sync_state"):
        pending = con.execute(f"SELECT count(*) FROM activation.sync_state WHERE record_key IN {ids}").fetchall()
        report.crm_clears_pending = pending[0][0]
        con.execute(f"UPDATE activation.sync_state SET erased = true WHERE record_key IN {ids}")
    _suppress(con, erasure_id, person_ids, person_emails)
    return report


def _remove_from_sources(con: duckdb.DuckDBPyConnection, removed: dict[str, int]) -> None:
    """Remove the people in ``_erase_ids`` / ``_erase_emails`` from the raw export, the CRM copy and the oracle.

    Their own rows go (contact records, marketing events); business records keep their rows but lose the
    reference to the person (an opportunity's primary contact, a product user's address), so revenue and
    usage figures stay true.
    """
    ids, addresses = "(SELECT value FROM _erase_ids)", "(SELECT value FROM _erase_emails)"
    if _table_exists(con, "raw", "marketing_events"):
        _delete(con, "raw.marketing_events", f"contact_id IN {ids}", removed)
    if _table_exists(con, "raw", "opportunities"):
        _null(con, "raw.opportunities", "contact_id", f"contact_id IN {ids}", removed)
    if _table_exists(con, "raw", "product_users"):
        _null(con, "raw.product_users", "email", f"lower(trim(email)) IN {addresses}", removed)
    if _table_exists(con, "raw", "contacts"):
        _delete(con, "raw.contacts", f"contact_id IN {ids} OR lower(trim(email)) IN {addresses}", removed)
    for table, id_columns, email_column in (
        ("synthetic_crm.hubspot_contacts", ("id",), "email"),
        ("synthetic_crm.salesforce_leads", ('"Id"', '"ConvertedContactId"'), '"Email"'),
        ("synthetic_crm.salesforce_contacts", ('"Id"',), '"Email"'),
        ("oracle.lead_truth", ("contact_id",), None),
    ):
        schema, name = table.split(".")
        if _table_exists(con, schema, name):
            conditions = [f"{c} IN {ids}" for c in id_columns]
            if email_column:
                conditions.append(f"lower(trim({email_column})) IN {addresses}")
            _delete(con, table, " OR ".join(conditions), removed)


def _person_columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """(schema, table, column) of every base table outside the special schemas with a person column."""
    wanted = (*PERSON_ID_COLUMNS, *EMAIL_COLUMNS)
    rows = con.execute(
        f"""
        SELECT c.table_schema, c.table_name, c.column_name
        FROM information_schema.columns AS c
        JOIN information_schema.tables AS t USING (table_catalog, table_schema, table_name)
        WHERE t.table_type = 'BASE TABLE'
          AND c.table_schema NOT IN ({", ".join("?" * len(SPECIAL_SCHEMAS))})
          AND c.column_name IN ({", ".join("?" * len(wanted))})
          AND c.data_type = 'VARCHAR'
          AND c.table_catalog = current_database()
        ORDER BY 1, 2, 3
        """,
        [*SPECIAL_SCHEMAS, *wanted],
    ).fetchall()
    return [(schema, table, column) for schema, table, column in rows]


def _suppress(con: duckdb.DuckDBPyConnection, erasure_id: str, ids: set[str], emails: set[str]) -> None:
    salt = _salt(con)
    stamp = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for kind, values in (("id", ids), ("email", emails)):
        for value in sorted(values):
            con.execute(
                f"INSERT OR IGNORE INTO {SCHEMA}.suppressions SELECT {_digest_sql('?')}, ?, ?, ?",
                [salt, value, kind, erasure_id, stamp],
            )


def apply_suppressions(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Keep erased people out of a load that is being written (call inside the load's transaction, after
    the raw tables are filled): contact records whose address or id is suppressed, with everything that
    hangs on them, as :func:`erase` removes them. Returns the rows removed per table."""
    if not _table_exists(con, SCHEMA, "suppressions") or not _table_exists(con, "raw", "contacts"):
        return {}
    if not con.execute(f"SELECT count(*) FROM {SCHEMA}.suppressions").fetchall()[0][0]:
        return {}
    salt = _salt(con)
    digests = f"(SELECT digest FROM {SCHEMA}.suppressions)"
    matched = con.execute(
        f"""
        SELECT contact_id, lower(trim(email)), hubspot_contact_id, salesforce_lead_id, salesforce_contact_id
        FROM raw.contacts
        WHERE {_digest_sql("contact_id")} IN {digests}
           OR {_digest_sql("lower(email)")} IN {digests}
           OR {_digest_sql("hubspot_contact_id")} IN {digests}
           OR {_digest_sql("salesforce_lead_id")} IN {digests}
           OR {_digest_sql("salesforce_contact_id")} IN {digests}
        """,
        [salt] * 5,
    ).fetchall()
    if not matched:
        return {}
    _temp_values(con, "_erase_ids", {value for row in matched for value in (row[0], *row[2:]) if value})
    _temp_values(con, "_erase_emails", {row[1] for row in matched if row[1]})
    removed: dict[str, int] = {}
    _remove_from_sources(con, removed)
    return removed
