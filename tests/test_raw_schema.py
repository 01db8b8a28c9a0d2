"""The raw contract is defined once (ml/sources/schema.py); dbt's sources and the README follow it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ml.sources.schema import RAW_TABLES, RAW_TABLES_BY_NAME, Column, dbt_sources_yaml, markdown_reference

REPO = Path(__file__).resolve().parents[1]
SOURCES_YML = REPO / "dbt/models/staging/_sources.yml"
REGENERATE = (
    "regenerate it: .venv/bin/python -c 'from ml.sources.schema import dbt_sources_yaml; "
    'print(dbt_sources_yaml(), end="")\' > dbt/models/staging/_sources.yml'
)


def test_dbt_sources_declare_exactly_the_contract():
    doc = yaml.safe_load(SOURCES_YML.read_text())
    declared = {t["name"]: [c["name"] for c in t["columns"]] for t in doc["sources"][0]["tables"]}
    assert declared == {t.name: t.column_names for t in RAW_TABLES}


def test_dbt_sources_file_is_generated_from_the_contract():
    """Descriptions and not_null tests too, not only the column names."""
    assert SOURCES_YML.read_text() == dbt_sources_yaml(), REGENERATE


def test_readme_documents_the_contract():
    assert markdown_reference() in (REPO / "README.md").read_text()


def test_crm_ids_and_owners_follow_the_table_id_and_are_optional_columns():
    """The CRM's record ids and owners are what an ELT tool may not extract: optional, right after the id."""
    expected = {
        "accounts": ["account_id", "hubspot_company_id", "salesforce_account_id", "owner_user_id"],
        "crm_users": ["user_id", "hubspot_owner_id", "salesforce_user_id"],
        "contacts": [
            "contact_id",
            "hubspot_contact_id",
            "salesforce_lead_id",
            "salesforce_contact_id",
            "owner_user_id",
        ],
    }
    for table, names in expected.items():
        columns = RAW_TABLES_BY_NAME[table].columns[: len(names)]
        assert [c.name for c in columns] == names
        assert all(c.optional and c.nullable and c.type == "VARCHAR" for c in columns[1:])
    optional = {(t.name, c.name) for t in RAW_TABLES for c in t.columns if c.optional}
    assert optional == {(table, n) for table, names in expected.items() for n in names[1:]}
    assert "| `salesforce_lead_id` | VARCHAR | no (column optional) |" in markdown_reference()
    # Only the users may be missing from an export as a whole: without them leadscore knows no owners.
    assert [t.name for t in RAW_TABLES if t.optional] == ["crm_users"]
    assert "#### `raw.crm_users`\nThe CRM's users" in markdown_reference()
    assert "Optional: an export may leave it out; it then lands empty." in markdown_reference()


def test_an_optional_column_cannot_be_required():
    with pytest.raises(ValueError, match="cannot be required"):
        Column("x", "VARCHAR", "An id.", nullable=False, optional=True)
