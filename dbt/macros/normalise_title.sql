{#- Seniority and department from a free-text job title. The rules are ordered: the first match wins
    ("VP, Data & Analytics" is a VP in data). Unmatched titles become individual contributors in
    `other`, empty titles `unknown` - never null, so features and accepted-values tests stay simple. -#}
{% macro title_seniority(title) -%}
  case
    when nullif(trim({{ title }}), '') is null then 'unknown'
    when regexp_matches(lower({{ title }}), '\b(intern|student|trainee)\b') then 'intern'
    when regexp_matches(lower({{ title }}), '\b(ceo|cto|cfo|cmo|coo|cio|chief|founder|president)\b') then 'c_level'
    when regexp_matches(lower({{ title }}), '\b(vp|vice president|svp|evp)\b') then 'vp'
    when regexp_matches(lower({{ title }}), '\b(director|head)\b') then 'director'
    when regexp_matches(lower({{ title }}), '\b(manager|lead)\b') then 'manager'
    else 'individual_contributor'
  end
{%- endmacro %}

{% macro title_department(title) -%}
  case
    when nullif(trim({{ title }}), '') is null then 'unknown'
    when regexp_matches(lower({{ title }}), '\b(data|analytics|analyst|bi)\b') then 'data'
    when regexp_matches(lower({{ title }}), '\b(cto|engineer|engineering|developer|software)\b') then 'engineering'
    when regexp_matches(lower({{ title }}), '\b(cfo|finance|accountant|controller)\b') then 'finance'
    when regexp_matches(lower({{ title }}), '\b(cmo|marketing)\b') then 'marketing'
    when regexp_matches(lower({{ title }}), '\b(sales|account executive|sdr|development representative)\b') then 'sales'
    when regexp_matches(lower({{ title }}), '\b(it|cio|systems|administrator)\b') then 'it'
    when regexp_matches(lower({{ title }}), '\b(hr|recruiter|people|talent)\b') then 'hr'
    when regexp_matches(lower({{ title }}), '\b(coo|operations)\b') then 'operations'
    when regexp_matches(lower({{ title }}), '\b(ceo|founder|president)\b') then 'executive'
    else 'other'
  end
{%- endmacro %}
