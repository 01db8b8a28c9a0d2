{#- Layers get plain schema names (staging, intermediate); marts stay in the default schema `main`,
    where the pipeline and the CRM sync read them as `account_metrics`, `lead_features`. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
