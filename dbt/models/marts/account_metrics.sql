-- Current account metrics: one row per real account at the close of the last complete day of data.
{{ account_metrics_as_of('select data_through as as_of from ' ~ ref('int_data_window')) }}
