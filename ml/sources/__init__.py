"""Landing of the raw tables (schema ``raw``) in the warehouse.

Two loaders share one schema (:mod:`ml.sources.schema`): a seeded synthetic generator of a B2B SaaS
company (the default, with a hidden ``oracle`` schema for model evaluation) and a loader for a folder
of CSV/Parquet exports. Both replace the ``raw`` tables atomically, so running either twice never
duplicates anything.

It lives under ``ml/`` because the synthetic world is what the model learns from and is judged
against (the oracle); neither loader knows anything about Dagster.
"""
