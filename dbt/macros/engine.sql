{#-
  What differs between the engines. Every macro here is `adapter.dispatch`ed: the `default__` version is
  DuckDB's (the embedded default), the `spark__` version Spark SQL's. Models use these and nothing
  engine-specific, so an analyst edits one project for both (README "Scaling out").
-#}

{#- Raw tables on Spark: the loaders publish each raw table as Parquet under LEADSCORE_SPARK_DIR/raw/<table>;
    this on-run-start hook (re)registers them as external tables of schema `raw`, so that a new column or a
    re-published file is seen (dropping an external table keeps its files). DuckDB has them already. -#}
{% macro register_raw_tables() -%}
  {{ return(adapter.dispatch('register_raw_tables')()) }}
{%- endmacro %}

{% macro default__register_raw_tables() -%}
  select 1
{%- endmacro %}

{% macro spark__register_raw_tables() -%}
  {%- if execute -%}
    {%- set raw_dir = env_var('LEADSCORE_SPARK_DIR', '../data/spark') ~ '/raw' -%}
    {%- do run_query('create database if not exists raw') -%}
    {%- for source in graph.sources.values() if source.source_name == 'raw' -%}
      {%- do run_query('drop table if exists raw.' ~ source.name) -%}
      {%- do run_query("create table raw." ~ source.name ~ " using parquet location '" ~ raw_dir ~ "/" ~ source.name ~ "'") -%}
    {%- endfor -%}
  {%- endif -%}
  select 1
{%- endmacro %}

{#- Whether `expr` matches `pattern` as a whole (`full_match`) or anywhere (`contains`). `pattern` is the bare
    regular expression, without quotes: each engine gets it quoted its own way. Spark's string literals
    read backslash escapes, so '\b' would silently become 'b' and the pattern give wrong answers without an
    error; its backslashes are doubled here. -#}
{% macro regexp_full_match(expr, pattern) -%}
  {{ return(adapter.dispatch('regexp_full_match')(expr, pattern)) }}
{%- endmacro %}

{% macro default__regexp_full_match(expr, pattern) -%}
  regexp_full_match({{ expr }}, {{ sql_string(pattern) }})
{%- endmacro %}

{% macro spark__regexp_full_match(expr, pattern) -%}
  ({{ expr }} rlike {{ spark_regexp_literal('^(?:' ~ pattern ~ ')$') }})
{%- endmacro %}

{% macro regexp_contains(expr, pattern) -%}
  {{ return(adapter.dispatch('regexp_contains')(expr, pattern)) }}
{%- endmacro %}

{% macro default__regexp_contains(expr, pattern) -%}
  regexp_matches({{ expr }}, {{ sql_string(pattern) }})
{%- endmacro %}

{% macro spark__regexp_contains(expr, pattern) -%}
  ({{ expr }} rlike {{ spark_regexp_literal(pattern) }})
{%- endmacro %}

{% macro spark_regexp_literal(pattern) -%}
  '{{ pattern | replace("\\", "\\\\") | replace("'", "\\'") }}'
{%- endmacro %}

{#- Whole days from date `start` to date `end` (end - start), an integer. -#}
{% macro days_between(start, end) -%}
  {{ return(adapter.dispatch('days_between')(start, end)) }}
{%- endmacro %}

{% macro default__days_between(start, end) -%}
  ({{ end }} - {{ start }})
{%- endmacro %}

{% macro spark__days_between(start, end) -%}
  datediff({{ end }}, {{ start }})
{%- endmacro %}

{#- One row per day from `start` to `end` (date expressions, scalar subqueries allowed), column `day`. -#}
{% macro days_from_to(start, end) -%}
  {{ return(adapter.dispatch('days_from_to')(start, end)) }}
{%- endmacro %}

{% macro default__days_from_to(start, end) -%}
  select cast(d as date) as day
  from (select {{ start }} as first_day, {{ end }} as last_day) as bounds,
       generate_series(cast(bounds.first_day as timestamp), cast(bounds.last_day as timestamp), interval 1 day) as days(d)
{%- endmacro %}

{% macro spark__days_from_to(start, end) -%}
  select explode(sequence(cast(bounds.first_day as date), cast(bounds.last_day as date))) as day
  from (select {{ start }} as first_day, {{ end }} as last_day) as bounds
  where bounds.first_day <= bounds.last_day
{%- endmacro %}

{#- Integer division (truncating). -#}
{% macro int_div(numerator, denominator) -%}
  {{ return(adapter.dispatch('int_div')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__int_div(numerator, denominator) -%}
  (({{ numerator }}) // ({{ denominator }}))
{%- endmacro %}

{% macro spark__int_div(numerator, denominator) -%}
  (({{ numerator }}) div ({{ denominator }}))
{%- endmacro %}

{#- Arrays of strings: the sorted values of `column` in a group, the empty array, and one row per element
    (a set-returning expression for a select list: no rows for an empty array). -#}
{% macro sorted_string_array_agg(column) -%}
  {{ return(adapter.dispatch('sorted_string_array_agg')(column)) }}
{%- endmacro %}

{% macro default__sorted_string_array_agg(column) -%}
  list({{ column }} order by {{ column }})
{%- endmacro %}

{% macro spark__sorted_string_array_agg(column) -%}
  array_sort(collect_list({{ column }}))
{%- endmacro %}

{% macro empty_string_array() -%}
  {{ return(adapter.dispatch('empty_string_array')()) }}
{%- endmacro %}

{% macro default__empty_string_array() -%}
  []::varchar[]
{%- endmacro %}

{% macro spark__empty_string_array() -%}
  cast(array() as array<string>)
{%- endmacro %}

{% macro unnest_array(column) -%}
  {{ return(adapter.dispatch('unnest_array')(column)) }}
{%- endmacro %}

{% macro default__unnest_array(column) -%}
  unnest({{ column }})
{%- endmacro %}

{% macro spark__unnest_array(column) -%}
  explode({{ column }})
{%- endmacro %}

{#- A table row (by its alias in the from clause) as a JSON object, every column named, nulls included
    (Spark's to_json would drop null fields unless spark.sql.jsonGenerator.ignoreNullFields is false, which
    the profile sets). -#}
{% macro row_to_json(alias) -%}
  {{ return(adapter.dispatch('row_to_json')(alias)) }}
{%- endmacro %}

{% macro default__row_to_json(alias) -%}
  to_json({{ alias }})
{%- endmacro %}

{% macro spark__row_to_json(alias) -%}
  to_json(struct({{ alias }}.*))
{%- endmacro %}

{#- The keyword that makes a CTE computed once (DuckDB would otherwise inline it into every reader); Spark
    has none and decides itself. -#}
{% macro cte_materialized() -%}
  {{ return(adapter.dispatch('cte_materialized')()) }}
{%- endmacro %}

{% macro default__cte_materialized() -%}materialized{%- endmacro %}

{% macro spark__cte_materialized() -%}{%- endmacro %}

{#- Config of the incremental per-day history models: on DuckDB a re-built day replaces its rows
    (delete+insert by as_of); on Spark (and Databricks, whose adapter builds on Spark's) each as_of is a
    partition and a re-built day overwrites its partition (insert_overwrite, dynamic partition overwrite).
    Var `spark_file_format` picks the table format there: parquet (the default; DuckDB reads it for the
    Python side) or delta on Databricks. -#}
{% macro history_config() -%}
  {%- if target.type in ('spark', 'databricks') -%}
    {{ return({'incremental_strategy': 'insert_overwrite', 'partition_by': ['as_of'],
               'file_format': var('spark_file_format', 'parquet')}) }}
  {%- else -%}
    {{ return({'incremental_strategy': 'delete+insert', 'unique_key': 'as_of'}) }}
  {%- endif -%}
{%- endmacro %}
