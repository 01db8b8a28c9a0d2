{#-
  Point in time. `as_of` is a day; a row for it describes the close of that day, so it may use facts
  timestamped before `as_of + 1 day` (its cutoff) and nothing at or after. For events this also means
  *known* by then (`_loaded_at`): a late-arriving event counts from the day it arrived, exactly as the
  nightly run would have seen it, so training rows and scoring rows are built the same way.
-#}
{% macro as_of_cutoff(as_of) -%}
  ({{ as_of }} + interval 1 day)
{%- endmacro %}

{#-
  The as-of days a daily history model builds, as a query with one column `as_of`.
  Range: vars min_date/max_date when given (Dagster passes the partition window). Otherwise a full
  build starts 90 days into the history, an incremental run re-does the latest day it already has, and
  both end at the last complete day of data.
  Grid: days on the `snapshot_every_days` grid (weekly by default: enough training history, a seventh
  of the rows) plus always the last day of the range, which is the day being scored, plus every day
  from var daily_from on when it is set.
-#}
{% macro as_of_dates() -%}
  {%- set every = var('snapshot_every_days') | int -%}
  {%- set min_date -%}
      {% if var('min_date') -%} cast('{{ var("min_date") }}' as date)
      {%- elif is_incremental() -%} (select max(as_of) from {{ this }})
      {%- else -%} (select history_start + 90 from {{ ref('int_data_window') }})
      {%- endif %}
  {%- endset -%}
  {%- set max_date -%}
      {% if var('max_date') -%} cast('{{ var("max_date") }}' as date)
      {%- else -%} (select data_through from {{ ref('int_data_window') }})
      {%- endif %}
  {%- endset -%}
  select days.day as as_of
  from ({{ days_from_to(min_date, max_date) }}) as days
  where {{ days_between("date '2000-01-03'", 'days.day') }} % {{ every }} = 0
     or days.day = {{ max_date }}
     {%- if var('daily_from') %}
     or days.day >= cast('{{ var("daily_from") }}' as date)
     {%- endif %}
{%- endmacro %}

{# Engagement weight of something `days_ago` days old: halves every `decay_half_life_days`. #}
{% macro decay_weight(days_ago) -%}
  pow(0.5, cast({{ days_ago }} as double) / {{ var('decay_half_life_days') }})
{%- endmacro %}

{#-
  converted_90d: 1 if the lead converted in the horizon after its cutoff, 0 if not, null while that
  window is still open (its end is after the last complete day of data). A label is an outcome, not a
  point-in-time feature: training wants the truth as known now. So it is not stored with the history
  (rows are built once) but computed from the current outcomes whenever lead_features is read: a window
  that has closed since, a corrected close date or a reverted deal shows at once, on every engine.
-#}
{% macro label_expression(as_of, converted_at, data_through) -%}
  case
    when {{ as_of }} + {{ var('label_horizon_days') }} > {{ data_through }} then null
    when {{ converted_at }} >= {{ as_of_cutoff(as_of) }}
     and {{ converted_at }} < {{ as_of_cutoff(as_of) }} + interval {{ var('label_horizon_days') }} day then 1
    else 0
  end
{%- endmacro %}
