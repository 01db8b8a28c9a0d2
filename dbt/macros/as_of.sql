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
  select cast(d as date) as as_of
  from (
    select
      {% if var('min_date') -%} cast('{{ var("min_date") }}' as date)
      {%- elif is_incremental() -%} (select max(as_of) from {{ this }})
      {%- else -%} (select history_start + 90 from {{ ref('int_data_window') }})
      {%- endif %} as min_date,
      {% if var('max_date') -%} cast('{{ var("max_date") }}' as date)
      {%- else -%} (select data_through from {{ ref('int_data_window') }})
      {%- endif %} as max_date
  ) bounds,
  generate_series(cast(bounds.min_date as timestamp), cast(bounds.max_date as timestamp), interval 1 day) days(d)
  where datediff('day', date '2000-01-03', cast(d as date)) % {{ every }} = 0
     or cast(d as date) = bounds.max_date
     {%- if var('daily_from') %}
     or cast(d as date) >= cast('{{ var("daily_from") }}' as date)
     {%- endif %}
{%- endmacro %}

{# Engagement weight of something `days_ago` days old: halves every `decay_half_life_days`. #}
{% macro decay_weight(days_ago) -%}
  pow(0.5, ({{ days_ago }}) / {{ var('decay_half_life_days') }}.0)
{%- endmacro %}

{#-
  converted_90d: 1 if the lead converted in the horizon after its cutoff, 0 if not, null while that
  window is still open (its end is after the last complete day of data). Rows are inserted once, so
  this post-hook brings the labels of older rows up to date: it closes those whose window has closed since,
  and corrects any that the current export contradicts (an opportunity's close date corrected, a deal
  reverted). A label is an outcome, not a point-in-time feature: training wants the truth as known now.
-#}
{% macro label_expression(as_of, converted_at, data_through) -%}
  case
    when {{ as_of }} + {{ var('label_horizon_days') }} > {{ data_through }} then null
    when {{ converted_at }} >= {{ as_of_cutoff(as_of) }}
     and {{ converted_at }} < {{ as_of_cutoff(as_of) }} + interval {{ var('label_horizon_days') }} day then 1
    else 0
  end
{%- endmacro %}

{% macro refresh_closed_labels() -%}
  update {{ this }} as f
  set converted_90d = {{ label_expression('f.as_of', 'l.converted_at', 'w.data_through') }}
  from {{ ref('int_leads') }} as l, {{ ref('int_data_window') }} as w
  where f.lead_id = l.lead_id
    and f.converted_90d is distinct from {{ label_expression('f.as_of', 'l.converted_at', 'w.data_through') }}
{%- endmacro %}
