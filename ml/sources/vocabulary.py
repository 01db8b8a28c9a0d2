"""The known values of the warehouse's enum columns, as Python reads them.

They are defined once, in ``dbt/dbt_project.yml`` (var ``known_values``), where staging, the quarantine
rules and the accepted_values tests read them (``dbt/macros/known_values.sql``). The synthetic generator
draws its industries, countries, lead sources and bands from them, and tests hold its other vocabularies
to them, so the world it generates is exactly the one the warehouse knows.
"""

from __future__ import annotations

from pathlib import Path

import yaml

DBT_PROJECT_FILE = Path(__file__).resolve().parents[2] / "dbt" / "dbt_project.yml"


def load_known_values(path: Path = DBT_PROJECT_FILE) -> dict[str, tuple[str, ...]]:
    """Var ``known_values`` of the dbt project: column -> its known values, in their order."""
    lists = yaml.safe_load(path.read_text())["vars"]["known_values"]
    for column, values in lists.items():
        odd = [v for v in values if not isinstance(v, str)]
        if odd:
            raise ValueError(f"{path}: known_values.{column} has {odd!r}: quote it (YAML reads a bare NO as false)")
    return {column: tuple(values) for column, values in lists.items()}


KNOWN_VALUES: dict[str, tuple[str, ...]] = load_known_values()


def load_territories(path: Path = DBT_PROJECT_FILE) -> tuple[dict[str, str], str]:
    """Vars ``territories`` and ``default_territory``: country code -> territory, and the territory of the rest."""
    project_vars = yaml.safe_load(path.read_text())["vars"]
    territories = project_vars["territories"].items()
    by_country = {country: territory for territory, countries in territories for country in countries}
    return by_country, project_vars["default_territory"]


TERRITORY_OF_COUNTRY, DEFAULT_TERRITORY = load_territories()
