"""The raw contract is defined once (ml/sources/schema.py); dbt's sources and the README follow it."""

from __future__ import annotations

from pathlib import Path

import yaml

from ml.sources.schema import RAW_TABLES, markdown_reference

REPO = Path(__file__).resolve().parents[1]


def test_dbt_sources_declare_exactly_the_contract():
    doc = yaml.safe_load((REPO / "dbt/models/staging/_sources.yml").read_text())
    declared = {t["name"]: [c["name"] for c in t["columns"]] for t in doc["sources"][0]["tables"]}
    assert declared == {t.name: t.column_names for t in RAW_TABLES}


def test_readme_documents_the_contract():
    assert markdown_reference() in (REPO / "README.md").read_text()
