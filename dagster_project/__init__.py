"""Dagster wiring for leadscore: assets, resources, partitions, schedules and checks. Thin on purpose:
the logic lives in ``ml/``, ``activation/`` and the dbt project."""
