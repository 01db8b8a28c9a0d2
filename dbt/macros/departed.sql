{#-
  Deletions and merges flow through the history. CRMs delete and merge records every day; an export
  then simply lacks them. The current marts are rebuilt from the export and follow at once, but the
  incremental history models keep every earlier day, so a person or company that left the export would
  linger there: the relationship tests would fail every night from then on, and training would learn from
  someone who no longer exists. This post-hook removes, from the whole history, the rows of every key no
  longer in its current model (a merged-away duplicate is one of them: its activity already counts for the
  surviving record, see int_contact_identity). `keys` is a list of (column, model) pairs.
-#}
{% macro delete_departed(keys) -%}
  delete from {{ this }} as h
  where
  {%- for column, model in keys %}
    {{ "or " if not loop.first }}not exists (select 1 from {{ ref(model) }} as c where c.{{ column }} = h.{{ column }})
  {%- endfor %}
{%- endmacro %}
