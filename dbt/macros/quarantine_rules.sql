{#-
  The rules a raw row must pass to enter staging. One definition serves both sides: staging keeps the
  rows whose reason is null, `quarantine` keeps the others with the reason, so a row is never silently
  dropped and never passed on. A rule is (condition, reason); the first matching rule wins.
  "In the future" means after the row's own `_loaded_at`: nothing can happen after it was extracted.
  A CRM record id that is present but not an id of its object (macros/crm_ids.sql: wrong shape, a
  Salesforce key prefix of another object - 001 Account, 00Q Lead, 003 Contact - or an inconsistent
  checksum) is malformed: writing scores by it would hit no record or the wrong one. An empty id is
  missing, not malformed.
-#}
{% macro accepted_values_sql(name) -%}
  {%- set lists = {
      'lead_source': ['organic_search', 'paid_search', 'paid_social', 'referral', 'event', 'outbound',
                      'content_download', 'partner'],
      'event_type': ['email_send', 'email_open', 'email_click', 'page_view', 'form_submit', 'webinar_attended'],
      'employee_band': ['1-10', '11-50', '51-200', '201-1000', '1001-5000', '5000+'],
      'opportunity_stage': ['prospecting', 'qualification', 'proposal', 'negotiation', 'closed_won', 'closed_lost'],
      'plan': ['starter', 'professional', 'enterprise'],
      'billing_interval': ['monthly', 'annual'],
      'invoice_status': ['open', 'paid', 'void'],
  } -%}
  ({%- for v in lists[name] %}'{{ v }}'{{ ", " if not loop.last }}{% endfor -%})
{%- endmacro %}

{% macro rejection_rules(table) -%}
  {%- set email_pattern = "'^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$'" -%}
  {%- set rules = {
    'accounts': [
      ("account_id is null", "missing account_id"),
      ("created_at > _loaded_at", "created_at is in the future"),
      ("employee_band is not null and trim(employee_band) not in " ~ accepted_values_sql('employee_band'),
       "unknown employee_band"),
      (hubspot_id_is_malformed('hubspot_company_id'), "malformed hubspot_company_id"),
      (salesforce_id_is_malformed('salesforce_account_id', '001'), "malformed salesforce_account_id"),
    ],
    'contacts': [
      ("contact_id is null", "missing contact_id"),
      ("email is null or not regexp_full_match(trim(email), " ~ email_pattern ~ ")", "malformed email"),
      ("created_at > _loaded_at", "created_at is in the future"),
      ("lead_source is not null and lower(trim(lead_source)) not in " ~ accepted_values_sql('lead_source'),
       "unknown lead_source"),
      (hubspot_id_is_malformed('hubspot_contact_id'), "malformed hubspot_contact_id"),
      (salesforce_id_is_malformed('salesforce_lead_id', '00Q'), "malformed salesforce_lead_id"),
      (salesforce_id_is_malformed('salesforce_contact_id', '003'), "malformed salesforce_contact_id"),
    ],
    'marketing_events': [
      ("contact_id is null", "missing contact_id"),
      ("event_type is null or lower(trim(event_type)) not in " ~ accepted_values_sql('event_type'),
       "unknown event_type"),
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
      ("stage is null or lower(trim(stage)) not in " ~ accepted_values_sql('opportunity_stage'), "unknown stage"),
      ("created_at > _loaded_at or closed_at > _loaded_at", "timestamp is in the future"),
    ],
    'opportunity_stage_history': [
      ("stage is null or lower(trim(stage)) not in " ~ accepted_values_sql('opportunity_stage'), "unknown stage"),
      ("entered_at > _loaded_at", "entered_at is in the future"),
    ],
    'subscriptions': [
      ("mrr < 0", "negative mrr"),
      ("seats <= 0", "non-positive seats"),
      ("plan is null or lower(trim(plan)) not in " ~ accepted_values_sql('plan'), "unknown plan"),
      ("billing_interval is null or lower(trim(billing_interval)) not in " ~ accepted_values_sql('billing_interval'),
       "unknown billing_interval"),
      ("started_at > _loaded_at or cancelled_at > _loaded_at", "timestamp is in the future"),
    ],
    'invoices': [
      ("amount < 0", "negative amount"),
      ("status is null or lower(trim(status)) not in " ~ accepted_values_sql('invoice_status'), "unknown status"),
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
