{#- The sales territory of a country code (dbt_project.yml vars territories and default_territory):
    routing gives a hot lead without an active owner to a rep of its account's territory. -#}
{% macro territory_of(country) -%}
  case
  {%- for territory, countries in var('territories').items() %}
    when {{ country }} in ({% for c in countries %}'{{ c }}'{{ ", " if not loop.last }}{% endfor %}) then '{{ territory }}'
  {%- endfor %}
    else '{{ var("default_territory") }}'
  end
{%- endmacro %}
