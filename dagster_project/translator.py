"""Stable asset keys and groups for the dbt project.

Models keep their dbt name as key (``lead_features``, ``stg_contacts``): the names already carry the
layer and are what analysts search for, and keys must not change when a folder is reorganised.
Sources map to ``raw/<table>``, the keys of the Python assets that land them. Groups follow the dbt
layer (the folder under models/); quarantine belongs to staging, where its rules live.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import AssetKey
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

LAYER_GROUPS = {"staging": "staging", "quarantine": "staging", "intermediate": "intermediate", "marts": "marts"}


def dbt_asset_key(props: Mapping[str, Any]) -> AssetKey:
    if props["resource_type"] == "source":
        return AssetKey([props["source_name"], props["name"]])
    return AssetKey([props["name"]])


def dbt_group(props: Mapping[str, Any]) -> str | None:
    if props["resource_type"] != "model":
        return None
    layer = props["fqn"][1] if len(props["fqn"]) > 2 else "marts"
    return LAYER_GROUPS.get(layer, layer)


class LeadscoreDbtTranslator(DagsterDbtTranslator):
    def __init__(self) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        return dbt_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return dbt_group(dbt_resource_props)
