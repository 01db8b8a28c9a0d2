"""The raw-table contract: what an ELT tool (or the synthetic generator) must land in schema ``raw``.

This module is the single definition of that contract: the synthetic generator writes exactly these
columns, the files loader validates exports against them, dbt's ``sources.yml`` is generated from them
(:func:`dbt_sources_yaml`) and the README documents them (:func:`markdown_reference`);
``tests/test_raw_schema.py`` keeps the four in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # a DuckDB type name
    description: str
    nullable: bool = True
    # The column may be absent from a file export; it then loads as empty (NULL). For columns an ELT
    # tool may not extract (the CRM's own record ids): leadscore works without them, though activation
    # then finds only HubSpot contacts (by e-mail).
    optional: bool = False

    def __post_init__(self) -> None:
        if self.optional and not self.nullable:
            raise ValueError(f"{self.name}: an optional column loads as empty, so it cannot be required")


@dataclass(frozen=True)
class RawTable:
    name: str
    description: str
    columns: tuple[Column, ...]
    # The primary key: no two rows may share it. The files loader refuses an export that repeats one (rows with
    # a NULL in the key are not compared); staging's unique tests rely on it.
    key: tuple[str, ...] = ()
    # The file may be absent from an export; the table then loads empty. For tables an ELT tool may not be
    # set up to extract (the CRM's users): leadscore works without them, with no owners.
    optional: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.key) - set(self.column_names)
        if unknown:
            raise ValueError(f"{self.name}: key columns {sorted(unknown)} are not columns of the table")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


LOADED_AT = Column(
    "_loaded_at",
    "TIMESTAMP",
    "When the ELT tool extracted the row. Staging treats any business timestamp after it as "
    "'in the future' (clock skew, bad data) and quarantines the row.",
    nullable=False,
)

RAW_TABLES: tuple[RawTable, ...] = (
    RawTable(
        "accounts",
        "Companies in the CRM (customers, prospects and the odd test account).",
        (
            Column("account_id", "VARCHAR", "CRM account id.", nullable=False),
            Column(
                "hubspot_company_id",
                "VARCHAR",
                "HubSpot company id (the record id, digits); empty when the company is not in HubSpot. "
                "Activation updates the company by it.",
                optional=True,
            ),
            Column(
                "salesforce_account_id",
                "VARCHAR",
                "Salesforce Account id (key prefix 001), 15 characters or 18 in any case; empty when the company "
                "is not in Salesforce. Staging turns it into the canonical 18-character id.",
                optional=True,
            ),
            Column(
                "owner_user_id",
                "VARCHAR",
                "CRM user (raw.crm_users) who owns the account; empty when unassigned. Alerts, tasks and digests "
                "go to the owner; hot leads without an active owner are routed.",
                optional=True,
            ),
            Column("account_name", "VARCHAR", "Company name; test accounts contain 'test'."),
            Column("domain", "VARCHAR", "Web domain."),
            Column("industry", "VARCHAR", "Industry, free-text casing."),
            Column("employee_band", "VARCHAR", "1-10, 11-50, 51-200, 201-1000, 1001-5000, 5000+."),
            Column("country", "VARCHAR", "ISO 3166 alpha-2 country code, any casing."),
            Column("revenue_band", "VARCHAR", "<1M, 1-10M, 10-50M, 50-250M, 250M+."),
            Column("founded_year", "INTEGER", "Year founded."),
            Column("created_at", "TIMESTAMP", "When the account was created in the CRM."),
            LOADED_AT,
        ),
        key=("account_id",),
    ),
    RawTable(
        "crm_users",
        "The CRM's users: the sales reps who own accounts and leads (HubSpot owners, Salesforce Users).",
        (
            Column("user_id", "VARCHAR", "CRM user id (what owner_user_id refers to).", nullable=False),
            Column(
                "hubspot_owner_id",
                "VARCHAR",
                "HubSpot owner id (digits); empty when the user is not a HubSpot owner. HubSpot tasks are assigned "
                "to it.",
                optional=True,
            ),
            Column(
                "salesforce_user_id",
                "VARCHAR",
                "Salesforce User id (key prefix 005), 15 characters or 18 in any case; empty when the user is not in "
                "Salesforce. Salesforce tasks are assigned to it.",
                optional=True,
            ),
            Column("full_name", "VARCHAR", "Name as shown in the CRM."),
            Column("email", "VARCHAR", "Work e-mail, any casing: where the morning digest goes."),
            Column("team", "VARCHAR", "Team name (e.g. 'SDR', 'AE')."),
            Column(
                "territory",
                "VARCHAR",
                "Sales territory, any casing: NA, EMEA, APAC or LATAM (accounts map to one by country).",
            ),
            Column("is_active", "BOOLEAN", "False for deactivated users (left the company); empty counts as active."),
            Column("created_at", "TIMESTAMP", "When the user was created in the CRM."),
            LOADED_AT,
        ),
        key=("user_id",),
        optional=True,
    ),
    RawTable(
        "contacts",
        "People (leads) at accounts, as exported from the CRM; may contain duplicates.",
        (
            Column("contact_id", "VARCHAR", "CRM contact id.", nullable=False),
            Column(
                "hubspot_contact_id",
                "VARCHAR",
                "HubSpot contact id (digits); empty when the person is not in HubSpot or the export did not "
                "resolve it (activation then finds the contact by e-mail). HubSpot keeps one contact per "
                "address, so duplicate rows of a person carry the same id.",
                optional=True,
            ),
            Column(
                "salesforce_lead_id",
                "VARCHAR",
                "Salesforce Lead id (key prefix 00Q), 15 characters or 18 in any case; kept after the Lead was "
                "converted. Empty for people created directly as Contacts or not in Salesforce.",
                optional=True,
            ),
            Column(
                "salesforce_contact_id",
                "VARCHAR",
                "Salesforce Contact id (key prefix 003), 15 characters or 18 in any case: set once the Lead was "
                "converted, or for people created directly as Contacts; empty otherwise. Activation writes "
                "converted people here, not on their (read-only) Lead.",
                optional=True,
            ),
            Column(
                "owner_user_id",
                "VARCHAR",
                "CRM user (raw.crm_users) who owns the lead (its own owner: it may differ from the account's); "
                "empty when unassigned. Alerts, tasks and digests go to the owner; hot leads without an active "
                "owner are routed.",
                optional=True,
            ),
            Column("account_id", "VARCHAR", "Account the contact works at."),
            Column("email", "VARCHAR", "Email address, any casing."),
            Column("first_name", "VARCHAR", "First name."),
            Column("last_name", "VARCHAR", "Last name."),
            Column("title", "VARCHAR", "Job title as typed; may be empty."),
            Column("lead_source", "VARCHAR", "Acquisition channel (organic_search, paid_search, ...)."),
            Column("utm_campaign", "VARCHAR", "Campaign tag of the first visit."),
            Column("marketing_consent", "BOOLEAN", "Whether the person agreed to marketing."),
            Column("created_at", "TIMESTAMP", "When the contact was created."),
            LOADED_AT,
        ),
        key=("contact_id",),
    ),
    RawTable(
        "marketing_events",
        "Email and web activity of contacts (marketing automation export).",
        (
            Column("event_id", "BIGINT", "Event id.", nullable=False),
            Column("contact_id", "VARCHAR", "Contact the event belongs to."),
            Column(
                "event_type",
                "VARCHAR",
                "email_send, email_open, email_click, page_view, form_submit, webinar_attended.",
            ),
            Column("page_path", "VARCHAR", "URL path for page views and form submits."),
            Column("occurred_at", "TIMESTAMP", "When it happened."),
            LOADED_AT,
        ),
        key=("event_id",),
    ),
    RawTable(
        "product_users",
        "Users of the product (trials and customers).",
        (
            Column("user_id", "VARCHAR", "Product user id.", nullable=False),
            Column("account_id", "VARCHAR", "Account the user belongs to."),
            Column("email", "VARCHAR", "User email."),
            Column("invited_at", "TIMESTAMP", "When the user was created or invited."),
            LOADED_AT,
        ),
        key=("user_id",),
    ),
    RawTable(
        "workspaces",
        "Workspaces created in the product.",
        (
            Column("workspace_id", "VARCHAR", "Workspace id.", nullable=False),
            Column("account_id", "VARCHAR", "Owning account."),
            Column("created_by_user_id", "VARCHAR", "User who created it."),
            Column("created_at", "TIMESTAMP", "When it was created."),
            LOADED_AT,
        ),
        key=("workspace_id",),
    ),
    RawTable(
        "product_usage",
        "Daily product activity per user (one row per user per active day).",
        (
            Column("user_id", "VARCHAR", "Product user id.", nullable=False),
            Column("account_id", "VARCHAR", "Account of the user."),
            Column("usage_date", "DATE", "Day of activity.", nullable=False),
            Column("sessions", "INTEGER", "Sessions that day."),
            Column("feature_events", "INTEGER", "Feature interactions that day."),
            LOADED_AT,
        ),
        key=("user_id", "usage_date"),
    ),
    RawTable(
        "opportunities",
        "Sales opportunities with their outcome.",
        (
            Column("opportunity_id", "VARCHAR", "CRM opportunity id.", nullable=False),
            Column("account_id", "VARCHAR", "Account."),
            Column("contact_id", "VARCHAR", "Primary contact (the lead that converted)."),
            Column("amount", "DOUBLE", "Annual contract value in USD."),
            Column("stage", "VARCHAR", "Current stage (prospecting ... closed_won, closed_lost)."),
            Column("created_at", "TIMESTAMP", "When the opportunity was opened."),
            Column("closed_at", "TIMESTAMP", "When it was won or lost; empty while open."),
            Column("is_won", "BOOLEAN", "True when won; empty while open."),
            LOADED_AT,
        ),
        key=("opportunity_id",),
    ),
    RawTable(
        "opportunity_stage_history",
        "Every stage an opportunity entered.",
        (
            Column("opportunity_id", "VARCHAR", "Opportunity.", nullable=False),
            Column("stage", "VARCHAR", "Stage entered."),
            Column("entered_at", "TIMESTAMP", "When it entered the stage."),
            LOADED_AT,
        ),
        key=("opportunity_id", "stage"),
    ),
    RawTable(
        "subscriptions",
        "Paid subscriptions (billing system).",
        (
            Column("subscription_id", "VARCHAR", "Subscription id.", nullable=False),
            Column("account_id", "VARCHAR", "Paying account."),
            Column("opportunity_id", "VARCHAR", "Opportunity that created it."),
            Column("plan", "VARCHAR", "starter, professional or enterprise."),
            Column("seats", "INTEGER", "Licensed seats."),
            Column("mrr", "DOUBLE", "Monthly recurring revenue in USD (annual plans: price / 12)."),
            Column("billing_interval", "VARCHAR", "monthly or annual."),
            Column("started_at", "TIMESTAMP", "Start of the subscription."),
            Column("cancelled_at", "TIMESTAMP", "End of the subscription; empty while active."),
            LOADED_AT,
        ),
        key=("subscription_id",),
    ),
    RawTable(
        "invoices",
        "Invoices issued for subscriptions.",
        (
            Column("invoice_id", "VARCHAR", "Invoice id.", nullable=False),
            Column("account_id", "VARCHAR", "Billed account."),
            Column("subscription_id", "VARCHAR", "Subscription billed."),
            Column("amount", "DOUBLE", "Amount in USD."),
            Column("currency", "VARCHAR", "ISO currency code."),
            Column("status", "VARCHAR", "open, paid or void."),
            Column("issued_at", "TIMESTAMP", "Issue date."),
            LOADED_AT,
        ),
        key=("invoice_id",),
    ),
    RawTable(
        "payments",
        "Payments received against invoices.",
        (
            Column("payment_id", "VARCHAR", "Payment id.", nullable=False),
            Column("invoice_id", "VARCHAR", "Invoice paid."),
            Column("amount", "DOUBLE", "Amount in USD."),
            Column("paid_at", "TIMESTAMP", "When the money arrived."),
            LOADED_AT,
        ),
        key=("payment_id",),
    ),
)

RAW_TABLES_BY_NAME: dict[str, RawTable] = {t.name: t for t in RAW_TABLES}


def create_table_sql(table: RawTable, schema: str = "raw") -> str:
    """DDL for one raw table (``CREATE OR REPLACE`` so a reload replaces, never appends)."""
    cols = ",\n  ".join(f"{c.name} {c.type}{'' if c.nullable else ' NOT NULL'}" for c in table.columns)
    return f"CREATE OR REPLACE TABLE {schema}.{table.name} (\n  {cols}\n)"


def _required_cell(column: Column) -> str:
    if column.optional:
        return "no (column optional)"
    return "no" if column.nullable else "yes"


def markdown_reference() -> str:
    """The raw schema as Markdown, for the README (a test checks the README is in step)."""
    lines: list[str] = []
    for table in RAW_TABLES:
        key = ", ".join(f"`{c}`" for c in table.key)
        unique = f" Key: {key}{' (unique together)' if len(table.key) > 1 else ' (unique)'}." if table.key else ""
        optional = " Optional: an export may leave it out; it then lands empty." if table.optional else ""
        lines.append(f"#### `raw.{table.name}`\n{table.description}{unique}{optional}\n")
        lines.append("| column | type | required | description |")
        lines.append("|---|---|---|---|")
        for c in table.columns:
            lines.append(f"| `{c.name}` | {c.type} | {_required_cell(c)} | {c.description} |")
        lines.append("")
    return "\n".join(lines)


SOURCES_DESCRIPTION = (
    "Raw tables landed by the synthetic generator or the files loader (contract: ml/sources/schema.py, "
    "README 'Raw tables'). Rows that break a rule are not passed on: they land in staging.quarantine with a reason."
)


def _source_column(column: Column) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": column.name, "description": column.description}
    if not column.nullable:
        entry["data_tests"] = ["not_null"]
    return entry


def dbt_sources_yaml() -> str:
    """dbt's ``models/staging/_sources.yml``, generated from the contract (a test checks the file is in step)."""
    doc = {
        "version": 2,
        "sources": [
            {
                "name": "raw",
                "schema": "raw",
                "description": SOURCES_DESCRIPTION,
                "tables": [
                    {
                        "name": t.name,
                        "description": t.description,
                        "columns": [_source_column(c) for c in t.columns],
                    }
                    for t in RAW_TABLES
                ],
            }
        ],
    }
    header = "# Generated from ml/sources/schema.py (tests/test_raw_schema.py keeps them in step).\n"
    return header + yaml.safe_dump(doc, sort_keys=False, width=110, allow_unicode=True)
