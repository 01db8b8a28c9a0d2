{#- Seniority and department from a free-text job title. The rules are ordered: the first match wins
    ("VP, Data & Analytics" is a VP in data). Unmatched titles become individual contributors in
    `other`, empty titles `unknown` - never null, so features and accepted-values tests stay simple.
    One rule per line: (words, value), the words a regexp alternation matched as whole words. -#}
{% macro _title_rules(kind) -%}
  {%- set rules = {
  'seniority': [
    ('intern|student|trainee', 'intern'),
    ('ceo|cto|cfo|cmo|coo|cio|chief|founder|president', 'c_level'),
    ('vp|vice president|svp|evp', 'vp'),
    ('director|head', 'director'),
    ('manager|lead', 'manager'),
  ],
  'department': [
    ('data|analytics|analyst|bi', 'data'),
    ('cto|engineer|engineering|developer|software', 'engineering'),
    ('cfo|finance|accountant|controller', 'finance'),
    ('cmo|marketing', 'marketing'),
    ('sales|account executive|sdr|development representative', 'sales'),
    ('it|cio|systems|administrator', 'it'),
    ('hr|recruiter|people|talent', 'hr'),
    ('coo|operations', 'operations'),
    ('ceo|founder|president', 'executive'),
  ],
  } -%}
  {{ return(rules[kind]) }}
{%- endmacro %}

{% macro _title_case(kind, title, default) -%}
  case
    when nullif(trim({{ title }}), '') is null then 'unknown'
    {%- for words, value in _title_rules(kind) %}
    when {{ regexp_contains('lower(' ~ title ~ ')', '\\b(' ~ words ~ ')\\b') }} then '{{ value }}'
    {%- endfor %}
    else '{{ default }}'
  end
{%- endmacro %}

{% macro title_seniority(title) -%}
  {{ _title_case('seniority', title, 'individual_contributor') }}
{%- endmacro %}

{% macro title_department(title) -%}
  {{ _title_case('department', title, 'other') }}
{%- endmacro %}
