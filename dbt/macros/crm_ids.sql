{#-
  The CRM's own record ids, as exports carry them.

  Salesforce: a record id is 15 case-sensitive characters (3-character key prefix naming the object, then
  pod and record number), or 18: the same 15 plus 3 characters that say, 5 characters at a time, which of
  the first 15 are upper case - the form that survives tools that ignore case. `normalize_salesforce_id`
  is the SQL twin of `activation/salesforce_ids.py:normalize_salesforce_id` (tests hold the two to each
  other): every form of one id becomes the one canonical 18-character id, anything else null.

  It runs on every exported id on every build, so the common cases stay cheap: an 18-character id
  whose suffix matches its first 15 characters is canonical already, and only an id whose case was
  mangled (or that came between spaces) is rebuilt from its suffix. The SQL is spelled out character
  by character with plain string functions (substr, instr, upper, lower; one regexp for the shape):
  `translate` and `regexp_replace` would read shorter but cost ten times more in DuckDB, and another
  engine needs at most its own regexp function (macros/engine.sql). Unlike Python's `str.strip`, `trim` removes spaces
  only: an id wrapped in tabs is malformed here.

  HubSpot: a record id is a plain number.
-#}

{%- macro _salesforce_alphabet() -%}ABCDEFGHIJKLMNOPQRSTUVWXYZ012345{%- endmacro -%}

{#- Whether the one character `char` (an expression) is an upper-case letter. -#}
{% macro _is_upper(char) -%}
  ({{ char }} between 'A' and 'Z')
{%- endmacro %}

{#- The 3-character suffix of the first 15 characters of `id`, taken as correctly cased: per block of 5
    characters, one bit per upper-case letter (first character lowest), spelled in the suffix alphabet. -#}
{% macro _salesforce_checksum_suffix(id) -%}
  {%- for block in range(3) -%}
    substr('{{ _salesforce_alphabet() }}', 1
    {%- for offset in range(5) %}
      + case when {{ _is_upper('substr(' ~ id ~ ', ' ~ (block * 5 + offset + 1) ~ ', 1)') }} then {{ 2 ** offset }} else 0 end
    {%- endfor %}, 1){{ " ||" if not loop.last }}
  {% endfor -%}
{%- endmacro %}

{#- Whether the suffix of an 18-character `id` records character `position` (0-based) as upper case. -#}
{% macro _suffix_says_upper(id, position) -%}
  ({{ int_div("instr('" ~ _salesforce_alphabet() ~ "', upper(substr(" ~ id ~ ", " ~ (16 + position // 5) ~ ", 1))) - 1",
              2 ** (position % 5)) }} % 2 = 1)
{%- endmacro %}

{#-
  The canonical 18-character Salesforce id of `column`, or null when it is not a Salesforce id.
  15 characters: taken as typed (its case is the id) and the suffix appended. 18 characters in any case:
  the case of the first 15 is restored from the suffix; null when the suffix marks a digit as upper case
  (it was not computed from this id). Surrounding spaces are ignored; empty is null.
-#}
{% macro normalize_salesforce_id(column) -%}
  {%- set as_is = "(" ~ column ~ ")" -%}
  {%- set id = "trim(" ~ column ~ ")" -%}
  case
    -- The common cases, read on the value as it came: `trim` costs more than all the rest, so it is
    -- left to the rare values the shapes below reject.
    when {{ regexp_full_match(as_is, '[A-Za-z0-9]{15}') }} then {{ as_is }} || {{ _salesforce_checksum_suffix(as_is) }}
    when {{ regexp_full_match(as_is, '[A-Za-z0-9]{15}[A-Za-z0-5]{3}') }}
         and {{ _salesforce_checksum_suffix(as_is) }} = upper(substr({{ as_is }}, 16, 3))
      then substr({{ as_is }}, 1, 15) || upper(substr({{ as_is }}, 16, 3))
    -- The rare ones: not an id at all, surrounding spaces, or a case mangled on the way.
    when not {{ regexp_full_match(id, '[A-Za-z0-9]{15}([A-Za-z0-5]{3})?') }} then null
    when length({{ id }}) = 15 then {{ id }} || {{ _salesforce_checksum_suffix(id) }}
    -- the suffix records a digit as upper case: it is not this id's suffix
    when
      {%- for position in range(15) %}
      ({{ _suffix_says_upper(id, position) }} and substr({{ id }}, {{ position + 1 }}, 1) between '0' and '9')
      {{- " or" if not loop.last }}
      {%- endfor %}
      then null
    -- the case was mangled: rebuild it character by character
    else
      {%- for position in range(15) %}
      case when {{ _suffix_says_upper(id, position) }}
           then upper(substr({{ id }}, {{ position + 1 }}, 1)) else lower(substr({{ id }}, {{ position + 1 }}, 1)) end ||
      {%- endfor %}
      upper(substr({{ id }}, 16, 3))
  end
{%- endmacro %}

{#- Whether `column` is a well-formed HubSpot record id (1 to 20 digits, surrounding spaces ignored). -#}
{% macro is_valid_hubspot_id(column) -%}
  {{ regexp_full_match(column, ' *[0-9]{1,20} *') }}
{%- endmacro %}

{#- A HubSpot id as staging carries it: trimmed; empty is null (missing, not malformed). -#}
{% macro clean_hubspot_id(column) -%}
  nullif(trim({{ column }}), '')
{%- endmacro %}

{#-
  Quarantine conditions (macros/quarantine_rules.sql): a non-empty id that is not a valid id of its
  object: true or false, never null. An empty id is missing, not malformed. (The emptiness test comes
  last: only the few values that are not valid ids reach it.)
-#}
{% macro salesforce_id_is_malformed(column, key_prefix) -%}
  (coalesce(substr({{ normalize_salesforce_id(column) }}, 1, 3) <> '{{ key_prefix }}', true)
   and coalesce(trim({{ column }}) <> '', false))
{%- endmacro %}

{% macro hubspot_id_is_malformed(column) -%}
  (not coalesce({{ is_valid_hubspot_id(column) }}, true) and coalesce(trim({{ column }}) <> '', false))
{%- endmacro %}
