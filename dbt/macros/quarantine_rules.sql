{#-
  The rules a raw row must pass to enter staging. One definition serves both sides: staging keeps the
  rows whose reason is null, `quarantine` keeps the others with the reason, so a row is never silently
  dropped and never passed on. A rule is (condition, reason); the first matching rule wins.
  "In the future" means after the row's own `_loaded_at`: nothing can happen after it was extracted.
  A CRM record id that is present but not an id of its object (macros/crm_ids.sql: wrong shape, a
  Salesforce key prefix of another object - 001 Account, 00Q Lead, 003 Contact, 005 User - or an inconsistent
  checksum) is malformed: writing scores by it would hit no record or the wrong one. An empty id is
  missing, not malformed.
  Enum values (macros/known_values.sql, lists in dbt_project.yml var known_values) are a rule only where
  the warehouse computes with them: an event of an unknown type cannot be counted by the features, and an
  unknown stage, plan, billing interval or invoice status would corrupt revenue and conversions. A
  descriptive value outside its list (industry, country, lead source, employee band) is no reason to
  drop a row: staging keeps it as 'other' and staging.unknown_values lists it.
-#}
{% macro rejection_rules(table) -%}
  {%- set rules = {
    'accounts': [
      ("account_id is null", "missing account_id"),
      ("created_at > _loaded_at", "created_at is in the future"),
      (hubspot_id_is_malformed('hubspot_company_id'), "malformed hubspot_company_id"),
      (salesforce_id_is_malformed('salesforce_account_id', '001'), "malformed salesforce_account_id"),
    ],
    'crm_users': [
      ("user_id is null", "missing user_id"),
      ("created_at > _loaded_at", "created_at is in the future"),
      (hubspot_id_is_malformed('hubspot_owner_id'), "malformed hubspot_owner_id"),
      (salesforce_id_is_malformed('salesforce_user_id', '005'), "malformed salesforce_user_id"),
    ],
    'contacts': [
      ("contact_id is null", "missing contact_id"),
      ("email is null or not " ~ regexp_full_match('trim(email)', '[^@\\s]+@[^@\\s]+\\.[^@\\s]+'), "malformed email"),
      ("created_at > _loaded_at", "created_at is in the future"),
      (hubspot_id_is_malformed('hubspot_contact_id'), "malformed hubspot_contact_id"),
      (salesforce_id_is_malformed('salesforce_lead_id', '00Q'), "malformed salesforce_lead_id"),
      (salesforce_id_is_malformed('salesforce_contact_id', '003'), "malformed salesforce_contact_id"),
    ],
    'marketing_events': [
      ("contact_id is null", "missing contact_id"),
      (is_unknown_value('event_type', 'event_type'), "unknown event_type"),
      ("occurred_at is null", "missing occurred_at"),
      ("occurred_at > _loaded_at", "occurred_at is in the future"),
    ],
    'product_users': [("invited_at > _loaded_at", "invited_at is in the future")],
    'workspaces': [("created_at > _loaded_at", "created_at is in the future")],
    'product_usage': [
      ("usage_date > _loaded_at", "usage_date is in the future"),
      ("sessions < 0 or feature_events < 0", "negative activity count"),
    ],
    'opportunities': [
      ("amount < 0", "negative amount"),
      (is_unknown_value('opportunity_stage', 'stage'), "unknown stage"),
      ("created_at > _loaded_at or closed_at > _loaded_at", "timestamp is in the future"),
    ],
    'opportunity_stage_history': [
      (is_unknown_value('opportunity_stage', 'stage'), "unknown stage"),
      ("entered_at > _loaded_at", "entered_at is in the future"),
    ],
    'subscriptions': [
      ("mrr < 0", "negative mrr"),
      ("seats <= 0", "non-positive seats"),
      (is_unknown_value('plan', 'plan'), "unknown plan"),
      (is_unknown_value('billing_interval', 'billing_interval'), "unknown billing_interval"),
      ("started_at > _loaded_at or cancelled_at > _loaded_at", "timestamp is in the future"),
    ],
    'invoices': [
      ("amount < 0", "negative amount"),
      (is_unknown_value('invoice_status', 'status'), "unknown status"),
      ("issued_at > _loaded_at", "issued_at is in the future"),
    ],
    'payments': [
      ("amount < 0", "negative amount"),
      ("paid_at > _loaded_at", "paid_at is in the future"),
    ],
  } -%}
  {{ return(rules[table]) }}
{%- endmacro %}

{# A SQL expression: the first broken rule's reason, or null for a clean row. #}
{% macro rejection_reason(table) -%}
  case
  {%- for condition, reason in rejection_rules(table) %}
    when {{ condition }} then '{{ reason }}'
  {%- endfor %}
  end
{%- endmacro %}

{# The clean rows of a raw table, for its staging model. #}
{% macro clean_rows(table) -%}
  (select * from {{ source('raw', table) }} where ({{ rejection_reason(table) }}) is null)
{%- endmacro %}
