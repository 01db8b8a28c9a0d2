{{ config(meta={'dagster': {'ref': {'name': 'quarantine'}}}) }}
-- Nothing is silently dropped: every raw account is in staging or quarantined, every raw contact is
-- a lead, a merged duplicate or quarantined, and every raw event is in staging or quarantined.
with counts as (
    select 'accounts' as source_table,
           (select count(*) from {{ source('raw', 'accounts') }}) as raw_rows,
           (select count(*) from {{ ref('stg_accounts') }})
           + (select count(*) from {{ ref('quarantine') }} where source_table = 'accounts') as accounted
    union all
    select 'contacts',
           (select count(*) from {{ source('raw', 'contacts') }}) as raw_rows,
           (select count(*) from {{ ref('int_contact_identity') }})
           + (select count(*) from {{ ref('quarantine') }} where source_table = 'contacts') as accounted
    union all
    select 'marketing_events',
           (select count(*) from {{ source('raw', 'marketing_events') }}),
           (select count(*) from {{ ref('stg_marketing_events') }})
           + (select count(*) from {{ ref('quarantine') }}
              where source_table = 'marketing_events' and reason not like 'contact quarantined:%')
)
select * from counts where raw_rows <> accounted
