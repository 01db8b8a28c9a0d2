{#-
  The label of every lead_features row, from the current outcomes (macros/as_of.sql, label_expression),
  joined by (lead_id, as_of). Computing it when it is read instead of updating stored rows keeps closed
  windows and corrected outcomes current on every engine. A view on DuckDB (nothing to store); a table on
  Spark, where the Python side reads the marts as Parquet files (README "Scaling out").
-#}
{{ config(materialized=('view' if target.type == 'duckdb' else 'table'), tags=['daily_history']) }}
select
    f.lead_id,
    f.as_of,
    {{ label_expression('f.as_of', 'l.converted_at', 'w.data_through') }} as converted_90d
from {{ ref('lead_features') }} as f
join {{ ref('int_leads') }} as l on l.lead_id = f.lead_id
cross join {{ ref('int_data_window') }} as w
