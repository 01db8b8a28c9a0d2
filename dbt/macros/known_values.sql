{#-
  Enum columns against their known values: var `known_values` in dbt_project.yml, the one definition that
  staging, the quarantine rules, the accepted_values tests and Python (ml/sources/vocabulary.py) read.
  A raw value is first cleaned (casing, spaces: `clean_value`), then another spelling listed in var
  `value_synonyms` becomes its known value (`canonical_value`). Then it depends on what the column is for:

  - Descriptive columns (industry, country, lead source, bands): `descriptive_value` keeps a known value,
    turns a value outside the list into 'other' and a missing one into 'unknown'. The row passes, so a
    real CRM's own industries or countries never stop the warehouse or drop a person;
    staging.unknown_values lists every raw value that became 'other', and the warn-severity test
    `no_other_values` counts them per column.
  - Columns the warehouse computes with (event type, opportunity stage, plan, billing interval, invoice
    status): features count events by type and revenue logic reads stages, plans and statuses, so there
    is no 'other' to fall back on. `is_unknown_value` is a quarantine rule (macros/quarantine_rules.sql).
-#}

{% macro sql_string(value) -%}
  '{{ value | string | replace("'", "''") }}'
{%- endmacro %}

{% macro known_values(vocabulary) -%}
  {%- set lists = var('known_values') -%}
  {%- if vocabulary not in lists -%}
    {{ exceptions.raise_compiler_error("no known_values for '" ~ vocabulary ~ "' in dbt_project.yml") }}
  {%- endif -%}
  {{ return(lists[vocabulary]) }}
{%- endmacro %}

{# The known values of `vocabulary` (and `extra` ones) as a SQL list: ('a', 'b'). #}
{% macro known_values_sql(vocabulary, extra=[]) -%}
  ({%- for v in known_values(vocabulary) + extra %}{{ sql_string(v) }}{{ ", " if not loop.last }}{% endfor -%})
{%- endmacro %}

{# The value as the known lists spell it: country and territory codes upper case, bands without spaces, words in
   lower snake_case ('Financial Services' -> 'financial_services'). Plain string functions only: this
   runs on every event row. #}
{% macro clean_value(vocabulary, expr) -%}
  {%- if vocabulary in ('country', 'territory') -%}
    upper(trim({{ expr }}))
  {%- elif vocabulary in ('employee_band', 'revenue_band') -%}
    upper(replace({{ expr }}, ' ', ''))
  {%- else -%}
    replace(lower(trim({{ expr }})), ' ', '_')
  {%- endif -%}
{%- endmacro %}

{# The cleaned value with synonyms (var value_synonyms) replaced by their known value. #}
{% macro canonical_value(vocabulary, expr) -%}
  {%- set synonyms = (var('value_synonyms') or {}).get(vocabulary) or {} -%}
  {%- if synonyms -%}
    (case {{ clean_value(vocabulary, expr) }}
    {%- for spelling, value in synonyms.items() %} when {{ sql_string(spelling) }} then {{ sql_string(value) }}
    {%- endfor %} else {{ clean_value(vocabulary, expr) }} end)
  {%- else -%}
    {{ clean_value(vocabulary, expr) }}
  {%- endif -%}
{%- endmacro %}

{# A descriptive column in staging: the known value, 'other' when a value outside the list was given,
   'unknown' when none was. A raw 'Other' or 'Unknown' means just that. Never null. #}
{% macro descriptive_value(vocabulary, expr) -%}
  case
    when nullif({{ clean_value(vocabulary, expr) }}, '') is null then 'unknown'
    when {{ canonical_value(vocabulary, expr) }} in {{ known_values_sql(vocabulary, ['other', 'unknown']) }}
      then {{ canonical_value(vocabulary, expr) }}
    else 'other'
  end
{%- endmacro %}

{# A quarantine condition: the value is missing or not known (after cleaning and synonyms). #}
{% macro is_unknown_value(vocabulary, expr) -%}
  coalesce({{ canonical_value(vocabulary, expr) }}, '') not in {{ known_values_sql(vocabulary) }}
{%- endmacro %}

{#- Warns (never fails) with the number of rows whose `column_name` fell into 'other': values a real CRM
    has that the known lists do not. staging.unknown_values names them. -#}
{% test no_other_values(model, column_name) %}
{{ config(severity='warn') }}
select {{ column_name }} from {{ model }} where {{ column_name }} = 'other'
{% endtest %}

{#- Fails when a known value is not spelled as cleaning spells values (it could never match: add
    'Biotechnology' and every biotech account stays 'other'), or a synonym is unclean or maps to a value
    that is not known. -#}
{% test known_values_are_clean(model) %}
{%- set synonyms = var('value_synonyms') or {} %}
select * from (
  {%- for vocabulary, values in var('known_values').items() %}
    {%- for value in values %}
    select '{{ vocabulary }}' as vocabulary, {{ sql_string(value) }} as value, 'known value is not clean' as problem
    where {{ clean_value(vocabulary, sql_string(value)) }} is distinct from {{ sql_string(value) }}
    union all
    {%- endfor %}
  {%- endfor %}
  {%- for vocabulary, mapping in synonyms.items() %}
    {%- for spelling, value in mapping.items() %}
    select '{{ vocabulary }}', {{ sql_string(spelling) }}, 'synonym is not clean or not of a known value'
    where {{ clean_value(vocabulary, sql_string(spelling)) }} is distinct from {{ sql_string(spelling) }}
       or {{ sql_string(value) }} not in {{ known_values_sql(vocabulary) }}
    union all
    {%- endfor %}
  {%- endfor %}
    select null, null, null where false
)
{% endtest %}
