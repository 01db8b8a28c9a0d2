"""The raw-table contract: what an ELT tool (or the synthetic generator) must land in schema ``raw``.

This module is the single definition of that contract: the synthetic generator writes exactly these
columns, the files loader validates exports against them, dbt's ``sources.yml`` declares them and the
README documents them (``tests/test_raw_schema.py`` keeps the four in step).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # a DuckDB type name
    description: str
    nullable: bool = True


@dataclass(frozen=True)
class RawTable:
    name: str
    description: str
    columns: tuple[Column, ...]

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
    ),
    RawTable(
        "contacts",
        "People (leads) at accounts, as exported from the CRM; may contain duplicates.",
        (
            Column("contact_id", "VARCHAR", "CRM contact id.", nullable=False),
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
    ),
)

RAW_TABLES_BY_NAME: dict[str, RawTable] = {t.name: t for t in RAW_TABLES}


def create_table_sql(table: RawTable, schema: str = "raw") -> str:
    """DDL for one raw table (``CREATE OR REPLACE`` so a reload replaces, never appends)."""
    cols = ",\n  ".join(f"{c.name} {c.type}{'' if c.nullable else ' NOT NULL'}" for c in table.columns)
    return f"CREATE OR REPLACE TABLE {schema}.{table.name} (\n  {cols}\n)"


def markdown_reference() -> str:
    """The raw schema as Markdown, for the README (a test checks the README is in step)."""
    lines: list[str] = []
    for table in RAW_TABLES:
        lines.append(f"#### `raw.{table.name}`\n{table.description}\n")
        lines.append("| column | type | required | description |")
        lines.append("|---|---|---|---|")
        for c in table.columns:
            lines.append(f"| `{c.name}` | {c.type} | {'no' if c.nullable else 'yes'} | {c.description} |")
        lines.append("")
    return "\n".join(lines)
