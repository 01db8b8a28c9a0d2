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
                "identity": "lead_crm_ids",
                "destinations": {"hubspot": {"object": "contacts", "record_id": "hubspot_contact_id"}},
                "fields": [{"column": "score", "type": "number", "hubspot": "leadscore_score"}],
            }
        },
    }


def upsert_with_fields(fields: list[dict[str, Any]]) -> dict[str, Any]:
    document = broken(["objects", "leads", "destinations", "hubspot"], {"mode": "upsert", "object": "contacts",
                                                                          "id_property": "lid"})  # fmt: skip
    document["objects"]["leads"]["fields"] = fields
    return document


def test_the_shipped_mapping_has_the_documented_defaults() -> None:
    mapping = load_mapping()
    leads, accounts = mapping.object("leads"), mapping.object("accounts")
    assert (leads.relation, leads.key_column, leads.latest_by) == ("lead_scores", "lead_id", "as_of")
    assert (leads.identity, accounts.identity) == ("lead_crm_ids", "account_crm_ids")
    assert [f.column for f in leads.fields] == [
        "score", "fit_score", "engagement_score", "tier", "reasons", "score_change_7d",
    ]  # fmt: skip
    hubspot, salesforce = leads.target("hubspot"), leads.target("salesforce")
    assert (hubspot.mode, hubspot.object, hubspot.identity_columns) == (
        "update", "contacts", ("hubspot_contact_id", "email"),
    )  # fmt: skip
    assert (salesforce.mode, salesforce.objects) == ("update", ("Contact", "Lead"))
    assert hubspot.id_field is None and salesforce.id_field is None, "update mode: no key property of our own"
    assert accounts.target("salesforce").identity_columns == ("salesforce_account_id",)
    assert accounts.relation == "account_metrics" and accounts.key_column == "account_id"
    assert {"plan", "seats", "mrr", "arr", "ltv", "customer_status", "workspaces_created", "active_users_30d"} <= {
        f.column for f in accounts.fields
    }


def test_a_minimal_mapping_parses() -> None:
    obj = parse_mapping(minimal()).object("leads")
    assert obj.clear_when_missing is True and obj.latest_by is None
    assert obj.target("hubspot").mode == "update", "update is the default: nothing is created unless asked"
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
        (broken(["objects", "leads", "destinations", "hubspot", "record_id"], None), "record_id: required in mode"),
        (broken(["objects", "leads", "destinations", "hubspot", "mode"], "replace"), "'replace' is not one of"),
        (
            broken(["objects", "leads", "destinations", "hubspot"], {"mode": "upsert", "object": "contacts"}),
            "id_property: required in mode upsert",
        ),
        (
            broken(["objects", "leads", "destinations", "hubspot", "id_property"], "leadscore_lead_id"),
            "destinations.hubspot.id_property: unknown key",
        ),
        (broken(["objects", "leads", "destinations", "hubspot", "routes"], []), "give either routes or object"),
        (
            broken(["objects", "leads", "destinations"], {"salesforce": {"routes": [{"object": "Lead"}]}}),
            "routes[0].record_id: required",
        ),
        (
            broken(
                ["objects", "leads", "destinations"],
                {"salesforce": {"object": "Lead", "record_id": "x", "match_email": "email"}},
            ),
            "match_email: unknown key",
        ),
        (broken(["objects", "leads", "identity"], "a b"), "objects.leads.identity"),
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
            upsert_with_fields([{"column": "lead_id", "type": "string", "hubspot": "x"}]),
            "the key column 'lead_id' is sent as the upsert id",
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


def test_task_fields_are_activity_fields_in_metadata_and_subject_may_be_a_combobox() -> None:
    """Salesforce defines task and event custom fields on Activity: metadata under objects/Task/ is refused at
    deploy. A real org's describe gives Task.Subject as combobox, which a text field must accept."""
    files = metadata_files(load_mapping(DEFAULT_MAPPING_PATH))
    task_specs = [s for s in field_specs(load_mapping().object("tasks")) if s.sobject == "Task"]
    custom = [s for s in task_specs if s.custom]
    assert custom, "the tasks mapping has a custom key field"
    for spec in custom:
        assert f"force-app/main/default/objects/Activity/fields/{spec.name}.field-meta.xml" in files
        permissions = files["force-app/main/default/permissionsets/Leadscore_Integration.permissionset-meta.xml"]
        assert f"<field>Task.{spec.name}</field>" in permissions  # granted on Task; Salesforce mirrors Event
    assert not any("/objects/Task/" in path for path in files)
    subject = next(s for s in task_specs if s.name == "Subject")
    describe = [{"name": s.name, "type": s.describe_type, "updateable": True} for s in task_specs]
    describe = [{**d, "type": "combobox"} if d["name"] == "Subject" else d for d in describe]
    assert describe_problems([subject], describe) == []


def test_field_specs_and_describe_problems() -> None:
    leads = load_mapping().object("leads")
    specs = field_specs(leads)
    assert {s.sobject for s in specs} == {"Contact", "Lead"}
    lead_specs = {s.name: s for s in specs if s.sobject == "Lead"}
    assert "Leadscore_Lead_Id__c" not in lead_specs and lead_specs["Leadscore_Score__c"].scale == 1
    assert lead_specs["Leadscore_Reasons__c"].metadata_type == "LongTextArea"
    describe = [{"name": s.name, "type": s.describe_type, "updateable": True} for s in lead_specs.values()]
    assert describe_problems(list(lead_specs.values()), describe) == []
    assert describe_problems(list(lead_specs.values()), describe[1:]) == [
        "missing field Lead.Leadscore_Score__c: create it as Number(18, 1)"
    ]
    # Upsert mode (opt-in) needs the external id, and every field createable too.
    upsert = parse_mapping(
        {"version": 1, "objects": {"leads": {"relation": "r", "key_column": "lead_id", "destinations": {
            "salesforce": {"mode": "upsert", "object": "Lead", "external_id_field": "Leadscore_Lead_Id__c"}},
            "fields": [{"column": "score", "type": "number", "salesforce": "Leadscore_Score__c"}]}}}
    ).object("leads")  # fmt: skip
    upsert_specs = field_specs(upsert)
    assert upsert_specs[0].external_id and upsert_specs[0].name == "Leadscore_Lead_Id__c"
    found = [{"name": "Leadscore_Lead_Id__c", "type": "string", "externalId": True, "updateable": True},
             {"name": "Leadscore_Score__c", "type": "double", "updateable": True, "createable": False}]  # fmt: skip
    assert describe_problems(upsert_specs, found, creates=True) == [
        "field Lead.Leadscore_Lead_Id__c is not editable by the integration user: grant edit access "
        "(permission set Leadscore_Integration)",
        "field Lead.Leadscore_Score__c is not editable by the integration user: grant edit access "
        "(permission set Leadscore_Integration)",
    ]


DBT_MARTS = Path(__file__).resolve().parents[2] / "dbt" / "models" / "marts"


def documented_columns(model: str) -> set[str]:
    models = yaml.safe_load((DBT_MARTS / f"{model}.yml").read_text())["models"]
    return {c["name"] for m in models if m["name"] == model for c in m.get("columns", [])}


@pytest.mark.parametrize("obj_name", ["leads", "accounts"])
def test_mapped_columns_exist_in_the_dbt_marts(obj_name: str) -> None:
    """Contract with the warehouse: every column the mapping reads is documented in the marts' YAML (lead_scores
    is written by ml/, not dbt: only its identity relation is checked)."""
    obj = load_mapping().object(obj_name)
    if obj.relation != "lead_scores":
        needed = {obj.key_column, *(f.column for f in obj.fields), *([obj.latest_by] if obj.latest_by else [])}
        assert needed <= documented_columns(obj.relation), f"{obj.relation} lacks {needed}"
    assert obj.identity is not None
    identity = {obj.key_column, *(c for t in obj.destinations.values() for c in t.identity_columns)}
    missing = identity - documented_columns(obj.identity)
    assert not missing, f"mapping reads columns {obj.identity} lacks: {sorted(missing)}"
