-- Every raw row that broke a rule (macros/quarantine_rules.sql), with the reason and the row itself
-- as JSON, so it can be fixed at the source and nothing is lost. Staging passes on exactly the other
-- rows. Rows orphaned by a quarantined parent (the events of a contact with a malformed email) are
-- listed too, with the parent's reason, because intermediate cannot attribute them.
{%- set keys = {
    'accounts': 'account_id', 'crm_users': 'user_id', 'contacts': 'contact_id', 'marketing_events': 'event_id',
    'product_users': 'user_id', 'workspaces': 'workspace_id', 'product_usage': "user_id || '/' || usage_date",
    'opportunities': 'opportunity_id', 'opportunity_stage_history': "opportunity_id || '/' || stage",
    'subscriptions': 'subscription_id', 'invoices': 'invoice_id', 'payments': 'payment_id',
} %}
with rule_violations as (
{%- for table, key in keys.items() %}
    select
        '{{ table }}' as source_table,
        cast({{ key }} as {{ dbt.type_string() }}) as record_id,
        {{ rejection_reason(table) }} as reason,
        {{ row_to_json('r') }} as raw_row,
        _loaded_at as loaded_at
    from {{ source('raw', table) }} as r
    where ({{ rejection_reason(table) }}) is not null
    {{ "union all" if not loop.last }}
{%- endfor %}
),

quarantined_contacts as (
    select record_id as contact_id, reason from rule_violations where source_table = 'contacts'
),

clean_events as (
    select *
    from {{ source('raw', 'marketing_events') }}
    where ({{ rejection_reason('marketing_events') }}) is null
),

orphaned_events as (
    select
        'marketing_events' as source_table,
        cast(e.event_id as {{ dbt.type_string() }}) as record_id,
        'contact quarantined: ' || q.reason as reason,
        {{ row_to_json('e') }} as raw_row,
        e._loaded_at as loaded_at
    from clean_events as e
    join quarantined_contacts as q on q.contact_id = e.contact_id
)

select * from rule_violations
union all
select * from orphaned_events
