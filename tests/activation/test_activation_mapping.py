"""Mapping YAML validation and the Salesforce field definitions derived from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from activation.mapping import DEFAULT_MAPPING_PATH, MappingError, load_mapping, parse_mapping
from activation.salesforce_schema import SHIPPED_DIR, describe_problems, field_specs, metadata_files


def minimal() -> dict[str, Any]:
    return {
        "version": 1,
        "objects": {
            "leads": {
                "relation": "lead_scores",
                "key_column": "lead_id",
                "destinations": {"hubspot": {"object": "contacts", "id_property": "leadscore_lead_id"}},
                "fields": [{"column": "score", "type": "number", "hubspot": "leadscore_score"}],
            }
        },
    }


def test_the_shipped_mapping_has_the_documented_defaults() -> None:
    mapping = load_mapping()
    leads, accounts = mapping.object("leads"), mapping.object("accounts")
    assert (leads.relation, leads.key_column, leads.latest_by) == ("lead_scores", "lead_id", "as_of")
    assert [f.column for f in leads.fields] == [
        "score", "fit_score", "engagement_score", "tier", "reasons", "score_change_7d",
    ]  # fmt: skip
    assert leads.target("hubspot").id_field == "leadscore_lead_id"
    assert leads.target("salesforce").id_field == "Leadscore_Lead_Id__c"
    assert accounts.relation == "account_metrics" and accounts.key_column == "account_id"
    assert {"plan", "seats", "mrr", "arr", "ltv", "customer_status", "workspaces_created", "active_users_30d"} <= {
        f.column for f in accounts.fields
    }


def test_a_minimal_mapping_parses() -> None:
    obj = parse_mapping(minimal()).object("leads")
    assert obj.clear_when_missing is True and obj.latest_by is None
    assert obj.fields_for("hubspot")[0][1] == "leadscore_score"
    assert obj.fields_for("salesforce") == []


def broken(path: list[Any], value: Any) -> dict[str, Any]:
    document = minimal()
    node = document
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (broken(["version"], 2), "version: must be 1"),
        (broken(["objects", "leads", "relation"], "lead scores; drop"), "objects.leads.relation"),
        (
            broken(["objects", "leads", "fields", 0, "type"], "float"),
            "objects.leads.fields[0].type: 'float' is not one of",
        ),
        (broken(["objects", "leads", "fields", 0, "hubspot"], "Leadscore Score"), "not a valid hubspot field name"),
        (broken(["objects", "leads", "fields", 0, "salesforce"], "Score__c"), "has no 'salesforce' destination"),
        (broken(["objects", "leads", "fields", 0, "colour"], "red"), "objects.leads.fields[0].colour: unknown key"),
        (broken(["objects", "leads", "destinations"], {"pipedrive": {}}), "unknown destination"),
        (broken(["objects", "leads", "destinations", "hubspot", "id_property"], None), "id_property: required"),
        (broken(["objects", "leads", "fields", 0, "digits"], 12), "digits: only for type number"),
        (broken(["objects", "leads", "fields"], []), "fields: must be a non-empty list"),
        (
            broken(
                ["objects", "leads", "fields"],
                [{"column": "a", "type": "string", "hubspot": "x"}, {"column": "b", "type": "string", "hubspot": "x"}],
            ),
            "hubspot field 'x' is the target of several columns",
        ),
        (
            broken(["objects", "leads", "fields"], [{"column": "lead_id", "type": "string", "hubspot": "x"}]),
            "the key column 'lead_id' is sent as the id",
        ),
    ],
)
def test_invalid_mappings_name_the_offending_path(document: dict[str, Any], message: str) -> None:
    with pytest.raises(MappingError) as error:
        parse_mapping(document)
    assert message in str(error.value)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    document = broken(["objects", "leads", "fields", 0, "type"], "float")
    document["objects"]["leads"]["relation"] = 5
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(MappingError) as error:
        load_mapping(path)
    assert str(path) in str(error.value)
    assert "relation" in str(error.value) and "type" in str(error.value)


def test_not_yaml_is_a_mapping_error(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("objects: [unclosed")
    with pytest.raises(MappingError, match="not valid YAML"):
        load_mapping(path)


def test_shipped_salesforce_metadata_matches_the_mapping() -> None:
    """The deployable files in activation/salesforce_fields are regenerated from mapping.yaml, not hand-edited."""
    expected = metadata_files(load_mapping(DEFAULT_MAPPING_PATH))
    for relative, content in expected.items():
        assert (SHIPPED_DIR / relative).read_text() == content, (
            f"regenerate with python -m activation.salesforce_schema ({relative})"
        )
    shipped = {str(p.relative_to(SHIPPED_DIR)) for p in SHIPPED_DIR.rglob("*") if p.is_file()}
    assert shipped == set(expected)


def test_field_specs_and_describe_problems() -> None:
    leads = load_mapping().object("leads")
    specs = {s.name: s for s in field_specs(leads)}
    assert specs["Leadscore_Lead_Id__c"].external_id and specs["Leadscore_Score__c"].scale == 1
    assert specs["Leadscore_Reasons__c"].metadata_type == "LongTextArea"
    describe = [
        {"name": s.name, "type": s.describe_type, "externalId": s.external_id, "createable": True, "updateable": True}
        for s in specs.values()
    ]
    assert describe_problems(list(specs.values()), describe) == []
    assert describe_problems(list(specs.values()), describe[1:]) == [
        "missing field Lead.Leadscore_Lead_Id__c: create it as Text(80), External ID, Unique"
    ]


DBT_MARTS = Path(__file__).resolve().parents[2] / "dbt" / "models" / "marts"


@pytest.mark.parametrize("obj_name", ["accounts"])
def test_mapped_columns_exist_in_the_dbt_mart(obj_name: str) -> None:
    """Contract with the warehouse: every column the mapping reads is documented in the mart's YAML."""
    obj = load_mapping().object(obj_name)
    schema = DBT_MARTS / f"{obj.relation}.yml"
    if not schema.exists():
        pytest.skip(f"{schema} not in this checkout")
    models = yaml.safe_load(schema.read_text())["models"]
    columns = {c["name"] for m in models if m["name"] == obj.relation for c in m.get("columns", [])}
    needed = {obj.key_column, *(f.column for f in obj.fields), *([obj.latest_by] if obj.latest_by else [])}
    assert needed <= columns, f"mapping reads columns the mart lacks: {sorted(needed - columns)}"
