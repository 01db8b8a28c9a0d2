"""Stable asset keys, groups and check descriptions for the dbt project.

Models keep their dbt name as key (``lead_features``, ``stg_contacts``): the names already carry the
layer and are what analysts search for, and keys must not change when a folder is reorganised.
Sources map to ``raw/<table>``, the keys of the Python assets that land them; source ``leadscore`` (tables
the Python steps write, e.g. ``lead_scores``) maps to those assets' own keys. Groups follow the dbt
layer (the folder under models/); quarantine belongs to staging, where its rules live.

Every dbt test is an asset check, source tests included: a test on ``source('raw', ...)`` is a check on
the ``raw/<table>`` asset (run by the dbt op that reads the source), not an anonymous observation with a
warning in the run log. Every check has a description: the test's own (``description:`` in its yml, or
the comment heading a singular test), else one phrased from the test and the column it tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import AssetCheckSpec, AssetKey, AssetSpec
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtProject

LAYER_GROUPS = {
    "staging": "staging",
    "quarantine": "staging",
    "intermediate": "intermediate",
    "marts": "marts",
    "workflow": "workflow",
}
# Sources that are tables leadscore's own Python assets write (lead_scores): their key is that asset's.
OWN_SOURCES = "leadscore"
MAX_LISTED_VALUES = 8


def dbt_asset_key(props: Mapping[str, Any]) -> AssetKey:
    if props["resource_type"] == "source":
        if props["source_name"] == OWN_SOURCES:
            return AssetKey([props["name"]])
        return AssetKey([props["source_name"], props["name"]])
    return AssetKey([props["name"]])


def dbt_group(props: Mapping[str, Any]) -> str | None:
    if props["resource_type"] != "model":
        return None
    layer = props["fqn"][1] if len(props["fqn"]) > 2 else "marts"
    return LAYER_GROUPS.get(layer, layer)


def _leading_comment(sql: str) -> str:
    """The ``--`` comment lines at the top of a singular test (after its ``config`` call), as one sentence."""
    lines = []
    for line in sql.splitlines():
        text = line.strip()
        if not text or text.startswith("{{"):
            if lines:
                break
            continue
        if not text.startswith("--"):
            break
        lines.append(text.removeprefix("--").strip())
    return " ".join(lines)


def _values(values: Any) -> str:
    if isinstance(values, str):  # a Jinja expression, e.g. the known values from dbt_project.yml vars
        return f"listed by `{values.strip('{} ')}`"
    values = list(values or [])
    shown = ", ".join(f"`{v}`" for v in values[:MAX_LISTED_VALUES])
    return shown + (f" (and {len(values) - MAX_LISTED_VALUES} more)" if len(values) > MAX_LISTED_VALUES else "")


def _relation(kwargs: Mapping[str, Any], key: str) -> str:
    """``ref('stg_accounts')`` / ``source('raw', 'accounts')`` -> ``stg_accounts`` / ``raw.accounts``."""
    text = str(kwargs.get(key) or "")
    for prefix in ("ref(", "source("):
        if prefix in text:
            inner = text.split(prefix, 1)[1].split(")", 1)[0]
            return ".".join(part.strip(" '\"") for part in inner.split(","))
    return text or "?"


def dbt_test_description(test: Mapping[str, Any], target: str) -> str:
    """What a dbt test checks, for the Dagster UI: the test's own description if it has one, else a sentence
    phrased from the generic test and its arguments, e.g. "`lead_id` of `lead_features` is never null"."""
    own = (test.get("description") or "").strip() or str((test.get("meta") or {}).get("description") or "").strip()
    if own:
        return own
    generic = test.get("test_metadata") or {}
    if not generic:  # a singular test: the comment that heads its SQL says what it asserts
        comment = _leading_comment(test.get("raw_code") or "")
        path = test.get("original_file_path") or test["name"]
        return (
            f"{comment} (singular dbt test dbt/{path})" if comment else f"Singular dbt test dbt/{path} on `{target}`."
        )
    name, kwargs = generic.get("name", test["name"]), generic.get("kwargs") or {}
    column = test.get("column_name") or kwargs.get("column_name")
    subject = f"`{column}` of `{target}`" if column else f"`{target}`"
    phrases = {
        "not_null": f"{subject} is never null.",
        "unique": f"{subject} is unique.",
        "accepted_values": f"{subject} only takes the values {_values(kwargs.get('values'))}.",
        "relationships": f"Every {subject} exists as `{kwargs.get('field')}` in `{_relation(kwargs, 'to')}`.",
        "unique_combination_of_columns": f"`{target}` has one row per {_values(kwargs.get('combination_of_columns'))}.",
        "expression_is_true": f"`{kwargs.get('expression')}` holds on every row of `{target}`"
        + (f" where `{kwargs['condition']}`" if kwargs.get("condition") else "")
        + ".",
    }
    return phrases.get(name, f"dbt test `{name}` on {subject}.")


class LeadscoreDbtTranslator(DagsterDbtTranslator):
    def __init__(self) -> None:
        super().__init__(
            settings=DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_source_tests_as_checks=True)
        )

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        return dbt_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return dbt_group(dbt_resource_props)

    def get_asset_check_spec(
        self, asset_spec: AssetSpec, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> AssetCheckSpec | None:
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None or spec.description:
            return spec
        test = manifest["nodes"][unique_id]
        return spec._replace(description=dbt_test_description(test, asset_spec.key.to_user_string()))
