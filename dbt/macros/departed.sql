{#-
  Deletions and merges flow through the history. CRMs delete and merge records every day; an export
  then simply lacks them. The current marts are rebuilt from the export and follow at once, but the
  incremental history models keep every earlier day, so a person or company that left the export would
  linger there: the relationship tests would fail every night from then on, and training would learn from
  someone who no longer exists. This post-hook removes, from the whole history, the rows of every key no
  longer in its current model (a merged-away duplicate is one of them: its activity already counts for the
  surviving record, see int_contact_identity). `keys` is a list of (column, model) pairs.
  Spark cannot delete rows from a Parquet table; it overwrites partitions. There the rows to keep of every
  as_of partition that holds a departed key are copied aside and written back over those partitions (a
  partition of departed keys only would keep them: a day with no current lead at all does not happen).
-#}
{% macro delete_departed(keys) -%}
  {{ return(adapter.dispatch('delete_departed')(keys)) }}
{%- endmacro %}

{% macro _departed_condition(keys) -%}
  {%- for column, model in keys %}
    {{ "or " if not loop.first }}not exists (select 1 from {{ ref(model) }} as c where c.{{ column }} = h.{{ column }})
  {%- endfor %}
{%- endmacro %}

{% macro default__delete_departed(keys) -%}
  delete from {{ this }} as h
  where {{ _departed_condition(keys) }}
{%- endmacro %}

{% macro spark__delete_departed(keys) -%}
  {#- rendered outside `if execute`, so that dbt sees the refs when it parses the project -#}
  {%- set departed_days -%}
    select distinct h.as_of from {{ this }} as h where {{ _departed_condition(keys) }}
  {%- endset -%}
  {%- if execute -%}
    {%- if run_query(departed_days).rows | length > 0 -%}
      {%- set kept = this.schema ~ '.' ~ this.identifier ~ '__kept' -%}
      {%- do run_query('drop table if exists ' ~ kept) -%}
      {%- do run_query('create table ' ~ kept ~ ' using parquet as select * from ' ~ this ~ ' as h'
                       ~ ' where h.as_of in (' ~ departed_days ~ ') and not (' ~ _departed_condition(keys) ~ ')') -%}
      {%- do run_query('insert overwrite table ' ~ this ~ ' partition (as_of) select * from ' ~ kept) -%}
      {%- do run_query('drop table ' ~ kept) -%}
    {%- endif -%}
  {%- endif -%}
  select 1
{%- endmacro %}
