{{
    config(
        materialized='incremental',
        on_schema_change='append_new_columns',
        tags=['daily_history'],
        post_hook="{{ delete_departed([('account_id', 'int_accounts')]) }}",
        **history_config(),
    )
}}
-- Account metrics per account per as-of day, on the same date grid as lead_features (see
-- macros/as_of.sql): re-running a range replaces exactly those days.
{{ account_metrics_as_of(as_of_dates()) }}
