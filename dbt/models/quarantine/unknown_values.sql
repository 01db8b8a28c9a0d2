-- The quarantine report's companion: raw descriptive values that staging passed on as 'other' because
-- they are not in the known lists (dbt_project.yml var known_values, macros/known_values.sql), with how
-- many rows carried each, so no value is normalised silently. Their rows are not quarantined: they are
-- in staging, intermediate and the marts with 'other'. Titles in which no rule of
-- macros/normalise_title.sql finds a department are listed under `department`.
-- Each raw table is read (and its quarantine rules evaluated) once.
{%- set columns = {
    'accounts': [
        ('industry', 'industry', descriptive_value('industry', 'industry')),
        ('employee_band', 'employee_band', descriptive_value('employee_band', 'employee_band')),
        ('country', 'country', descriptive_value('country', 'country')),
        ('revenue_band', 'revenue_band', descriptive_value('revenue_band', 'revenue_band')),
    ],
    'crm_users': [
        ('territory', 'territory', descriptive_value('territory', 'territory')),
    ],
    'contacts': [
        ('lead_source', 'lead_source', descriptive_value('lead_source', 'lead_source')),
        ('department', 'title', title_department('title')),
    ],
} %}
with
{%- for table, table_columns in columns.items() %}
{{ table }} as {{ cte_materialized() }} (
    select
    {%- for column, raw_column, normalised in table_columns %}
        {{ raw_column }} as raw_{{ column }},
        ({{ normalised }}) = 'other' as {{ column }}_is_other{{ "," if not loop.last }}
    {%- endfor %}
    from {{ clean_rows(table) }}
){{ "," if not loop.last }}
{%- endfor %}

{%- for table, table_columns in columns.items() %}
{%- set outer = loop %}
{%- for column, raw_column, normalised in table_columns %}
select '{{ table }}' as source_table, '{{ column }}' as column_name, raw_{{ column }} as value, count(*) as row_count
from {{ table }}
where {{ column }}_is_other
group by raw_{{ column }}
{{ "union all" if not (loop.last and outer.last) }}
{%- endfor %}
{%- endfor %}
